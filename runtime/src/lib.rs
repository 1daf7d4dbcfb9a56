//! berth-runtime: the image store, layers and snapshots, and (in later modules) the registry
//! client, the runtime abstraction with its native and WASI backends, and containers' state.
//!
//! Every file operation inside a rootfs, layer or context goes through cap-std handles, so no
//! path, symlink or hardlink from an image can reach outside its root.

pub mod digest;
pub mod host;
pub mod image;
pub mod reference;
pub mod store;

pub use digest::Digest;
pub use reference::ImageRef;
pub use store::Store;
