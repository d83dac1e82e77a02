//! Request bodies read under a deadline and the body budget; answers written in
//! pieces, large ones under the answer budget.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;

use super::budget::Reservation;

/// First step of a chunked body's reservation; it doubles as the body grows,
/// so a client trickling bytes holds little of the budget.
const FIRST_STEP: usize = 16 * 1024;
/// Size of the pieces a large answer is handed to hyper in.
pub const ANSWER_PIECE: usize = 64 * 1024;

/// Why a body was not read.
pub enum Unread {
    /// Longer than the request's limit.
    TooLarge,
    /// The body budget could not give room for it in time.
    NoBudget,
    /// It did not arrive before the deadline.
    TimedOut,
    /// The connection failed or the framing was broken.
    Broken,
}

/// Reads a body of at most `limit` bytes before `deadline`, holding its bytes
/// in `reservation`. A body of known length (`declared`) reserves all of it
/// before reading: a request never holds part of the budget while waiting for
/// more, so uploads cannot deadlock each other. A chunked body grows its
/// reservation in doubling steps and is refused when a step cannot be had in
/// time. Time spent waiting for the budget is the server's, not the client's:
/// it moves the deadline.
pub async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
    limit: usize,
    reservation: &mut Reservation,
    budget_wait: Duration,
    mut deadline: Instant,
) -> Result<Bytes, Unread> {
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Unread::TooLarge);
    }
    let mut buffer: Vec<u8> = Vec::new();
    if let Some(len) = declared.filter(|len| *len > 0) {
        let len = len as usize;
        let waiting = Instant::now();
        if !reservation.grow_to(len, budget_wait).await {
            return Err(Unread::NoBudget);
        }
        deadline += waiting.elapsed();
        buffer.reserve_exact(len);
    }
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Unread::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(Unread::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buffer.len() + data.len();
        if needed > limit {
            return Err(Unread::TooLarge);
        }
        if needed > reservation.bytes() {
            let step = needed
                .max(reservation.bytes() * 2)
                .max(FIRST_STEP)
                .min(limit);
            let waiting = Instant::now();
            if !reservation.grow_to(step, budget_wait).await {
                return Err(Unread::NoBudget);
            }
            deadline += waiting.elapsed();
            buffer.reserve_exact(step - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

/// An answer's body: small ones whole, large ones in pieces with the budget
/// they hold, given back once the last piece is handed to hyper.
pub struct AnswerBody {
    rest: Bytes,
    /// Large answers are copied out piece by piece, so when this body ends the
    /// answer's memory is freed, not pinned by the few pieces hyper still writes.
    in_pieces: bool,
    reservation: Option<Reservation>,
}

impl AnswerBody {
    pub fn whole(bytes: Bytes) -> Self {
        AnswerBody {
            rest: bytes,
            in_pieces: false,
            reservation: None,
        }
    }

    pub fn in_pieces(bytes: Bytes, reservation: Reservation) -> Self {
        AnswerBody {
            rest: bytes,
            in_pieces: true,
            reservation: Some(reservation),
        }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.rest.is_empty() {
            self.reservation = None;
            return Poll::Ready(None);
        }
        let piece = if self.in_pieces && self.rest.len() > ANSWER_PIECE {
            let piece = Bytes::copy_from_slice(&self.rest[..ANSWER_PIECE]);
            self.rest.advance(ANSWER_PIECE);
            piece
        } else if self.in_pieces {
            // The last piece: copied too, so the whole answer is freed right here.
            let piece = Bytes::copy_from_slice(&self.rest);
            self.rest = Bytes::new();
            piece
        } else {
            std::mem::take(&mut self.rest)
        };
        if self.rest.is_empty() {
            self.reservation = None;
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}
