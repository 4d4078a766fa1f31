//! A tonic codec that forwards message bytes untouched.
//!
//! With [`PassThroughCodec`] a tonic client or server moves each gRPC message as an opaque
//! [`Bytes`] value: the length-prefix framing is handled by tonic, the payload is never decoded.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Encodes and decodes gRPC messages as raw bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughCodec;

/// The encoder half of [`PassThroughCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesEncoder;

/// The decoder half of [`PassThroughCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesDecoder;

impl Codec for PassThroughCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
