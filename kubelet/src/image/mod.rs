//! The image service: pulls OCI images from registries, verifies every digest, keeps a
//! content-addressed store, unpacks each layer once and gives containers overlayfs roots.
//! See docs/images.md.

pub mod archive;
pub mod policy;
pub mod pull;
pub mod reference;
pub mod rootfs;
pub mod store;
pub mod unpack;

pub use policy::{BackOffPolicy, Ensured, ImageEvent, ImageManager, ImageWait};
pub use pull::{ImageService, PullError, Pulled};
pub use reference::{ImageName, RegistryConfig};
pub use store::{ImageRecord, Store};
