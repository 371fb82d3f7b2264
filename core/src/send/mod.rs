//! The send side of the media path, in data-path order after capture, conversion and encoding
//! ([`crate::pipeline`]): the encode thread that paces grabs and feeds every viewer ([`encode_loop`]), the
//! slowest viewer's sender backlog it lets changed pictures wait for ([`backlog`]), each viewer's share of the
//! stream with its lag recovery ([`fan_out`], [`lag`]), and the remote cursor as plain logic ([`cursor`]). Packetizing and the wire are [`crate::transport`]'s.

pub(crate) mod backlog;
pub(crate) mod cursor;
pub(crate) mod encode_loop;
pub(crate) mod fan_out;
pub(crate) mod lag;
