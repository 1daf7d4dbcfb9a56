//! Layers: tar archives (plain, gzip or zstd) that change a filesystem, with OCI whiteouts
//! (`.wh.NAME` deletes NAME, `.wh..wh..opq` hides a folder's lower content).
//!
//! [`apply`] extracts a layer into a folder through cap-std, refusing any entry that would
//! reach outside it; [`create`] turns a folder (an overlay upper dir, or a plain rootfs) into a
//! layer with sorted, reproducible entries.

pub mod apply;
#[cfg(unix)]
pub mod create;

use std::io::{self, BufRead, BufReader, Read, Write};

use oci_spec::image::MediaType;

pub use apply::{ApplyOptions, LayerError, WhiteoutMode, apply};
#[cfg(unix)]
pub use create::{CreateOptions, create};

/// The prefix that marks a whiteout entry in a layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry name that makes its folder opaque.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Recognizes a compression format by its magic bytes.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

/// Whether a media type names a layer berth can unpack (OCI or Docker, any compression).
/// Where a WebAssembly layer's module appears in the image's filesystem.
pub const WASM_LAYER_PATH: &str = "/app.wasm";

/// Whether a layer is a bare WebAssembly module rather than a tar, as wasm tooling pushes them
/// (`application/wasm`, runwasi's and the Bytecode Alliance's wasm layer types). Its snapshot
/// holds the module at [`WASM_LAYER_PATH`], and its diff_id is the module's digest.
pub fn is_wasm_media_type(media_type: &MediaType) -> bool {
    let s = media_type.to_string();
    s == "application/wasm" || s.ends_with("+wasm")
}

/// Whether a layer's media type is one berth can unpack.
pub fn is_layer_media_type(media_type: &MediaType) -> bool {
    if is_wasm_media_type(media_type) {
        return true;
    }
    match media_type {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => true,
        MediaType::Other(s) => {
            s.starts_with("application/vnd.docker.image.rootfs.")
                || s.starts_with("application/vnd.oci.image.layer.")
        }
        _ => false,
    }
}

/// Wraps a reader of a possibly compressed stream in the matching decompressor, found by
/// sniffing the first bytes.
pub fn decompress<'a>(reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let head = reader.fill_buf()?;
    Ok(match Compression::sniff(head) {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// A compressing writer for layer blobs that must be finished explicitly, so a failure to
/// write the compressed stream's end is reported rather than lost in a drop.
pub enum Encoder<W: Write> {
    /// No compression.
    None(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts a compressed stream into `inner`.
    pub fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            // Level 6 is gzip's default: what registries and peers expect in size.
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}
