//! berth-runtime: the image store, layers and snapshots, and (in later modules) the registry
//! client, the runtime abstraction with its native and WASI backends, and containers' state.
//!
//! Every file operation inside a rootfs, layer or context goes through cap-std handles, so no
//! path, symlink or hardlink from an image can reach outside its root.

pub mod backend;
#[cfg(target_os = "linux")]
pub mod bundle;
pub mod container;
pub mod digest;
pub mod host;
pub mod image;
#[cfg(target_os = "linux")]
pub mod network;
pub mod reference;
pub mod registry;
pub mod sandbox;
pub mod store;
pub mod volume;
pub mod workload;

pub use digest::Digest;
pub use reference::ImageRef;
pub use store::Store;
