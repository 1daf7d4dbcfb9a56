//! berth-builder: turns Dockerfiles and a build context into images.
//!
//! The parser lives in [`dockerfile`]; [`config_edit`] applies metadata instructions to an
//! image config (for `berth import --change` and for builds). A build reads its [`context`],
//! makes a [`plan`] of the stages the target needs, and the [`executor`] runs each step,
//! reusing results from the [`cache`] and reporting through [`output`]; ADD of a URL downloads
//! through [`remote`].

pub mod budget;
pub mod cache;
pub mod cancel;
pub mod config_edit;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod executor;
pub mod glob;
pub mod layered;
pub mod output;
pub mod plan;
pub mod remote;
pub mod wasi;
