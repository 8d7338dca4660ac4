//! WebSocket frames as this server writes them (RFC 6455 §5.2): whole messages (FIN set), no
//! mask (only clients mask), no extension. A [`Frame`] is the header and the payload in one
//! shared allocation of exactly their length, so an event is framed once by the hub and every
//! socket writes the very same bytes to its peer: nothing is copied per socket.
//!
//! [`write_all`] writes frames straight from those shared bytes, several in one vectored
//! write, and resumes after a partial write. A socket therefore has no write buffer of its own,
//! whatever the size of the events.

use std::io::{self, IoSlice};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_PING: u8 = 0x9;

/// At most this many frames are handed to one vectored write (the kernel takes up to 1,024).
const MAX_SLICES: usize = 128;

/// A complete frame: header and payload.
#[derive(Clone, Debug)]
pub struct Frame(Bytes);

impl Frame {
    /// A text frame carrying `text`, in one allocation of exactly the frame's length.
    pub fn text(text: &str) -> Frame {
        let (header, header_len) = header(OP_TEXT, text.len());
        let mut bytes = BytesMut::with_capacity(header_len + text.len());
        bytes.put_slice(&header[..header_len]);
        bytes.put_slice(text.as_bytes());
        Frame(bytes.freeze())
    }

    /// No frame at all: what a slot holds once every socket has taken its event.
    pub fn empty() -> Frame {
        Frame(Bytes::new())
    }

    /// A ping with no payload.
    pub fn ping() -> Frame {
        Frame(Bytes::from_static(&[FIN | OP_PING, 0]))
    }

    /// The frame's length on the wire.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The payload: what the client receives as the message.
    pub fn payload(&self) -> &[u8] {
        let header_len = match self.0.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            _ => 2,
        };
        self.0.get(header_len..).unwrap_or_default()
    }
}

/// The header of an unmasked final frame: the opcode, then the payload length in 7, 16 or 64
/// bits, whichever is shortest (as §5.2 requires).
fn header(opcode: u8, len: usize) -> ([u8; 10], usize) {
    let mut header = [0; 10];
    header[0] = FIN | opcode;
    let header_len = if len < 126 {
        header[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        header[1] = 126;
        header[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (header, header_len)
}

/// Writes `frames` to `io` in order, handing the kernel as many as it takes in each write.
/// Not cancel-safe: once it has started, abandoning it leaves a frame cut short on the wire, so
/// the connection must then be dropped.
pub async fn write_all<W>(io: &mut W, frames: &[Frame]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    // The first frame not yet written in full, and how much of it is.
    let (mut first, mut offset) = (0, 0);
    while first < frames.len() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for (slice, frame) in slices.iter_mut().zip(&frames[first..]) {
            let from = if count == 0 { offset } else { 0 };
            *slice = IoSlice::new(&frame.0[from..]);
            count += 1;
        }
        // One frame (an event for a socket that keeps up, the common case) goes out with
        // send(2): writev(2) first copies in and checks an array of buffers, and takes the file
        // by its position lock, which showed in the profile of a sweep over 10,000 sockets.
        let mut written = if count == 1 {
            io.write(&slices[0]).await?
        } else {
            io.write_vectored(&slices[..count]).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let rest = frames[first].len() - offset;
            if written < rest {
                offset += written;
                break;
            }
            written -= rest;
            first += 1;
            offset = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_the_shortest_of_the_three_encodings() {
        for (len, expected) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let text = "x".repeat(len);
            let frame = Frame::text(&text);
            assert_eq!(frame.0[..expected.len()], expected[..], "length {len}");
            assert_eq!(frame.len(), expected.len() + len);
            assert_eq!(frame.payload(), text.as_bytes());
        }
    }

    /// A writer that takes at most `step` bytes a call, as a socket whose buffer is nearly full
    /// would: across slices when `vectored`, else from the first one only.
    struct Trickle {
        out: Vec<u8>,
        step: usize,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.step);
            this.out.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<io::Result<usize>> {
            if !self.vectored {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &**b);
                return self.poll_write(cx, first);
            }
            let this = self.get_mut();
            let mut taken = 0;
            for buf in bufs {
                let n = buf.len().min(this.step - taken);
                this.out.extend_from_slice(&buf[..n]);
                taken += n;
                if taken == this.step {
                    break;
                }
            }
            std::task::Poll::Ready(Ok(taken))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_resume_where_they_stopped_and_keep_the_order() {
        let frames: Vec<Frame> = (0..300)
            .map(|i| Frame::text(&"y".repeat(i * 7)))
            .chain([Frame::ping()])
            .collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.0.to_vec()).collect();
        for vectored in [false, true] {
            for step in [1, 3, 1000, 100_000, usize::MAX] {
                let mut out = Trickle {
                    out: Vec::new(),
                    step,
                    vectored,
                };
                write_all(&mut out, &frames).await.expect("written");
                assert!(out.out == expected, "step {step}, vectored {vectored}");
            }
        }
    }
}
