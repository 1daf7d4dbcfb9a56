//! Hostile layer corpus (being written).
mod common;
