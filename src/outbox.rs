//! A connection's outbound queue: bounded, with one reader (the connection's task) and
//! any number of writers (fan-out, echo, replies), and the request to close, which the
//! reader sees first: one waker and one lock for everything a connection waits on from
//! the rest of the server, polled once per turn of its loop.
//!
//! Not a `tokio::sync::mpsc`: that channel allocates a block of 32 slots (1.5 KiB here)
//! and its shared state (0.5 KiB) for every connection up front, most of an idle
//! connection's memory. This one holds nothing while empty and gives back what a burst
//! made it grow once the burst is written. A writer never waits: a full queue is the
//! caller's to handle (the slow-client policy closes the connection, see `hub.rs`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `cap` frames already wait.
    Full,
    /// The connection's task is gone.
    Closed,
}

/// The queue; see the module docs.
#[derive(Debug, Default)]
pub struct Outbox {
    state: Mutex<State>,
    /// Set (under the lock) while frames wait or a close is asked for: the reader looks
    /// here first, so its turns with nothing to do take no lock (most turns of an echo).
    pending: AtomicBool,
    reader: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Message>,
    /// Someone asked the connection to close.
    closing: bool,
    /// The reader is gone.
    closed: bool,
}

/// Capacity kept after a burst drains; more is given back.
const KEEP: usize = 8;

impl Outbox {
    /// Queues `msg` unless `cap` frames wait or the reader is gone.
    pub fn push(&self, msg: Message, cap: usize) -> Result<(), Refused> {
        {
            let mut s = self.state.lock();
            if s.closed {
                return Err(Refused::Closed);
            }
            if s.frames.len() >= cap {
                return Err(Refused::Full);
            }
            s.frames.push_back(msg);
            self.pending.store(true, Ordering::Release);
        }
        self.reader.wake();
        Ok(())
    }

    /// The next frame, if one waits (and no close was asked for).
    pub fn try_pop(&self) -> Option<Message> {
        match self.next() {
            Some(Some(msg)) => Some(msg),
            _ => None,
        }
    }

    /// Waits for the next frame; `None` once a close is asked for (what still waits is
    /// not written). Only the connection's own task reads.
    pub async fn pop(&self) -> Option<Message> {
        poll_fn(|cx| {
            if let Some(next) = self.next() {
                return Poll::Ready(next);
            }
            self.reader.register(cx.waker());
            // A push between the first look and the registration woke nobody.
            match self.next() {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// `Some(None)` if a close was asked for, `Some(Some(frame))` if one waits; one lock,
    /// none when nothing is pending.
    fn next(&self) -> Option<Option<Message>> {
        if !self.pending.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.state.lock();
        if s.closing {
            return Some(None);
        }
        let msg = s.frames.pop_front();
        if s.frames.is_empty() {
            self.pending.store(false, Ordering::Release);
            if s.frames.capacity() > KEEP {
                s.frames = VecDeque::new();
            }
        }
        msg.map(Some)
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        !self.pending.load(Ordering::Acquire) || self.state.lock().frames.is_empty()
    }

    /// Asks the reader to close; wakes it.
    pub fn ask_close(&self) {
        {
            let mut s = self.state.lock();
            s.closing = true;
            self.pending.store(true, Ordering::Release);
        }
        self.reader.wake();
    }

    /// Whether a close was asked for.
    pub fn is_closing(&self) -> bool {
        self.state.lock().closing
    }

    /// Resolves once a close is asked for. Only the connection's own task waits on it.
    pub async fn closing(&self) {
        poll_fn(|cx| {
            if self.is_closing() {
                return Poll::Ready(());
            }
            self.reader.register(cx.waker());
            if self.is_closing() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The reader is gone: what waits is dropped and later pushes are refused.
    pub fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        s.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_ordered_and_closable() {
        let q = Outbox::default();
        for i in 0..3 {
            q.push(Message::text(i.to_string()), 3).unwrap();
        }
        assert_eq!(q.push(Message::text("x"), 3), Err(Refused::Full));
        assert_eq!(q.pop().await, Some(Message::text("0")));
        assert_eq!(q.try_pop(), Some(Message::text("1")));
        q.ask_close();
        assert_eq!(q.pop().await, None, "a close comes before what still waits");
        q.closing().await;
        q.close();
        assert_eq!(q.try_pop(), None);
        assert_eq!(q.push(Message::text("y"), 3), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let q = std::sync::Arc::new(Outbox::default());
        let reader = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        tokio::task::yield_now().await;
        q.push(Message::text("hi"), 4).unwrap();
        assert_eq!(reader.await.unwrap(), Some(Message::text("hi")));
    }

    #[test]
    fn a_drained_burst_gives_its_memory_back() {
        let q = Outbox::default();
        for _ in 0..100 {
            q.push(Message::text("m"), 1000).unwrap();
        }
        while q.try_pop().is_some() {}
        assert!(q.state.lock().frames.capacity() <= KEEP);
    }
}
