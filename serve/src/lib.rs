//! `berth serve`: images as HTTP functions. One server (tokio and hyper) routes each request,
//! by Spin's route rules, to its route's executor: a wasi:http component or a WAGI module,
//! each request in a fresh instance with its own memory limit and deadline, or a native
//! image's containers, started on demand, scaled out under load and stopped when idle. See the design's
//! "Serving functions".

pub mod access_log;
pub mod body;
pub mod config;
pub mod executor;
pub mod function;
pub mod guest_output;
mod listener;
pub mod managed;
pub mod metrics;
pub mod reload;
pub mod route;
mod run;
pub mod server;
mod single;

pub use run::{ServeError, ServedRoute, Started, serve};
pub use single::serve_component;
