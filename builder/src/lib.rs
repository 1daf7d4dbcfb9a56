//! berth-builder: turns Dockerfiles and a build context into images.
//!
//! The parser lives in [`dockerfile`]; [`config_edit`] applies metadata instructions to an
//! image config (for `berth import --change` and for builds).

pub mod config_edit;
pub mod dockerfile;
