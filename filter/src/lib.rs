//! Ferry's proxy-wasm HTTP filter (placeholder while the crate is being written).
