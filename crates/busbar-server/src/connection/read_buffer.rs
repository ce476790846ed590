//! The connection's socket read buffer: room for many frames in every read.
//!
//! Frames are split off the front of the buffer and live on (a stored message's body is a
//! slice of it), so the buffer is rarely reclaimed in place; when it runs out, `bytes`
//! allocates a new one no larger than the allocation it started from. Started from the
//! listener's small read-ahead buffer, every later one was a few hundred bytes: a client
//! sending 1 KiB messages cost the broker two reads per message.

use bytes::BytesMut;

/// The allocation every read buffer starts from, and so the size of each later one.
const READ_BUFFER_SIZE: usize = 64 * 1024;
/// Below this much free room the buffer is renewed before a read.
const MIN_READ_ROOM: usize = 16 * 1024;

/// The buffer a connection reads into, holding the bytes already read ahead.
pub(super) fn read_buffer(read_ahead: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(READ_BUFFER_SIZE.max(read_ahead.len()));
    buf.extend_from_slice(read_ahead);
    buf
}

/// Makes room for a read of many frames (also after the decoder asked for only the rest
/// of a partial one).
pub(super) fn make_read_room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_READ_ROOM {
        buf.reserve(READ_BUFFER_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener's read-ahead buffer holds the protocol header; frames are then read,
    /// split off and kept alive (as stored messages keep them), with partial frames left.
    #[test]
    fn every_read_has_room_for_many_frames_while_frames_live_on() {
        let mut read_ahead = BytesMut::with_capacity(512);
        read_ahead.extend_from_slice(b"AMQP\x00\x01\x00\x00");
        let mut buf = read_buffer(&read_ahead);
        let mut kept = Vec::new();
        for round in 0..200 {
            make_read_room(&mut buf);
            let room = buf.capacity() - buf.len();
            assert!(
                room >= MIN_READ_ROOM,
                "round {round}: only {room} bytes of room"
            );
            // A read of 1.5 frames of 1,100 bytes; the whole frame goes, half stays.
            buf.extend_from_slice(&[7u8; 1650]);
            kept.push(buf.split_to(1100).freeze());
            kept.push(buf.split_to(buf.len() - 550).freeze());
            // What the frame decoder asks for to complete the partial frame.
            buf.reserve(550);
        }
    }
}
