//! The per-request slots one client connection shares with its callers: where a request waits
//! to be written, and where its response head and body frames wait to be taken.
//!
//! **The ordering contract**: responses arrive in the order requests were written, and
//! requests are written in the order they were called; so the connection hands the response it
//! is decoding to the oldest written slot, always, and a slot is a place in that order, not a
//! channel per request. There are `pipeline_depth` slots, allocated once; a slot is taken by
//! `poll_ready` (the back pressure) and comes back when both the connection is done with it
//! (its response decoded, or failed) and no caller holds it (the response future and its body
//! are gone or finished). A stale handle cannot reach a reused slot: each use of a slot has a
//! generation, and a handle names both.
//!
//! One mutex guards everything here: each request takes it a few times (call, write, head,
//! take), never across an await. A request is dropped only after the guard (its body's or
//! extensions' drop is the caller's code, and may drop a `SendRequest` of this very
//! connection); what runs under it of the caller's is the body's `is_end_stream` and
//! `size_hint`, read to encode the head.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{response, Request};
use http_body::{Body, Frame};

use super::encode::{self, Written};
use super::error::{Error, ErrorKind};

/// One use of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotId {
    index: u32,
    generation: u32,
}

/// How a response's body reaches its caller.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// No body.
    Empty,
    /// The whole body was already read with the head: no frames will follow.
    Full(Bytes),
    /// Frames follow through the slot; `Some(n)`: exactly n bytes.
    Streaming(Option<u64>),
}

/// A response head ready for its caller.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) parts: response::Parts,
    pub(crate) body: Delivery,
}

enum Answer {
    /// Nothing yet.
    Waiting,
    /// The head (or the failure) is here and not yet taken.
    Ready(Result<Head, Error>),
    /// The caller took it.
    Taken,
}

#[derive(Default)]
struct Frames {
    queue: VecDeque<Frame<Bytes>>,
    /// Data bytes in `queue`: the connection stops reading when this passes its limit.
    buffered: usize,
    /// How the body ended: `Ok` after the last frame, or why it did not.
    end: Option<Result<(), Error>>,
}

struct Slot<B> {
    generation: u32,
    /// From the call until it is written; after that, kept until the response begins when its
    /// body was empty, so an unanswered request can be handed back whole.
    request: Option<Request<B>>,
    answer: Answer,
    frames: Frames,
    /// The caller (response future, then a streaming body) still refers to this slot.
    held: bool,
    /// The caller dropped its handle: the connection reads the rest of the response and
    /// throws it away.
    abandoned: bool,
    /// The connection is done with it: the response was decoded to its end, or failed.
    finished: bool,
    waker: Option<Waker>,
}

impl<B> Slot<B> {
    fn blank() -> Self {
        Slot {
            generation: 0,
            request: None,
            answer: Answer::Waiting,
            frames: Frames::default(),
            held: false,
            abandoned: false,
            finished: false,
            waker: None,
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

struct State<B> {
    slots: Vec<Slot<B>>,
    free: Vec<u32>,
    /// Called and not yet written, in call order.
    queue: VecDeque<u32>,
    connection: Option<Waker>,
    /// Callers waiting in `poll_ready` for a free slot.
    ready: Vec<Waker>,
    /// Why the connection ended, once it has: every later call fails with it, unsent.
    ended: Option<String>,
    /// Live `SendRequest`s: with none left and nothing in flight, the connection ends.
    senders: usize,
}

/// The slots of one connection.
pub(crate) struct Shared<B> {
    state: Mutex<State<B>>,
}

/// A request taken off the queue to be written.
pub(crate) struct ToWrite<B> {
    pub(crate) slot: u32,
    pub(crate) written: Written,
    /// The body to stream after the head; `None` when it is empty (the request stays in its
    /// slot, to be handed back if it goes unanswered).
    pub(crate) body: Option<B>,
}

impl<B: Body + Send + 'static> Shared<B> {
    pub(crate) fn new(depth: usize) -> Self {
        let depth = u32::try_from(depth).expect("pipeline depth fits in u32");
        Shared {
            state: Mutex::new(State {
                slots: (0..depth).map(|_| Slot::blank()).collect(),
                free: (0..depth).rev().collect(),
                queue: VecDeque::with_capacity(depth as usize),
                connection: None,
                ready: Vec::new(),
                ended: None,
                senders: 1,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // --- the callers' side ---

    /// Takes a free slot for the next call, or registers the caller for one.
    pub(crate) fn poll_reserve(&self, cx: &mut Context<'_>) -> Poll<Result<u32, Error>> {
        let mut state = self.lock();
        if let Some(why) = &state.ended {
            return Poll::Ready(Err(Error::new(ErrorKind::NotSent, why.clone())));
        }
        match state.free.pop() {
            Some(index) => {
                state.slots[index as usize].held = true;
                Poll::Ready(Ok(index))
            }
            None => {
                if !state.ready.iter().any(|w| w.will_wake(cx.waker())) {
                    state.ready.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Gives back a slot reserved and not used.
    pub(crate) fn unreserve(&self, index: u32) {
        let mut state = self.lock();
        state.slots[index as usize].held = false;
        state.free.push(index);
        wake_ready(&mut state);
    }

    /// Queues `request` in its reserved slot for the connection to write.
    pub(crate) fn submit(&self, index: u32, request: Request<B>) -> Result<SlotId, Error> {
        let mut state = self.lock();
        if let Some(why) = &state.ended {
            let error = Error::new(ErrorKind::NotSent, why.clone()).with_request(request);
            state.slots[index as usize].held = false;
            state.free.push(index);
            return Err(error);
        }
        let slot = &mut state.slots[index as usize];
        slot.request = Some(request);
        let id = SlotId {
            index,
            generation: slot.generation,
        };
        state.queue.push_back(index);
        if let Some(waker) = &state.connection {
            waker.wake_by_ref();
        }
        Ok(id)
    }

    pub(crate) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    pub(crate) fn remove_sender(&self) {
        let mut state = self.lock();
        state.senders -= 1;
        if state.senders == 0 {
            if let Some(waker) = state.connection.take() {
                waker.wake();
            }
        }
    }

    /// Whether the connection has ended (later calls fail `NotSent`).
    pub(crate) fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// Requests reserved or in flight: `pipeline_depth` minus the free slots.
    pub(crate) fn outstanding(&self) -> usize {
        let state = self.lock();
        state.slots.len() - state.free.len()
    }

    // --- the connection's side ---

    /// The connection's waker, woken by a call, a freed body buffer, or the last sender's
    /// drop.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut state = self.lock();
        if !state
            .connection
            .as_ref()
            .is_some_and(|w| w.will_wake(waker))
        {
            state.connection = Some(waker.clone());
        }
    }

    /// The next queued request whose head `allow` admits, its head encoded onto `out`.
    pub(crate) fn next_to_write(
        &self,
        out: &mut Vec<u8>,
        allow: impl FnOnce(&Request<B>) -> bool,
    ) -> Option<ToWrite<B>> {
        // Declared before the guard, so dropped after it: a request's drop is the caller's
        // code, and may drop a `SendRequest` of this connection (which takes this lock).
        let mut cancelled = Vec::new();
        let mut state = self.lock();
        let index = loop {
            let &index = state.queue.front()?;
            let slot = &mut state.slots[index as usize];
            if !slot.abandoned {
                break index;
            }
            // Its caller left before it was written: it is never sent.
            cancelled.extend(slot.request.take());
            slot.finished = true;
            state.queue.pop_front();
            release_if_done(&mut state, index);
        };
        let slot = &mut state.slots[index as usize];
        let request = slot.request.as_ref()?;
        if !allow(request) {
            return None;
        }
        let written = encode::head(request, out);
        let (parts, body) = match written.body {
            encode::BodyKind::Empty => (None, None),
            _ => match slot.request.take().map(Request::into_parts) {
                Some((parts, body)) => (Some(parts), Some(body)),
                None => (None, None),
            },
        };
        state.queue.pop_front();
        drop(state);
        drop((cancelled, parts));
        Some(ToWrite {
            slot: index,
            written,
            body,
        })
    }

    /// Hands the response head to the slot's caller (unless it left), with the request
    /// kept for a retry released. Returns whether the caller left (the body is to be
    /// discarded) and the request to drop outside the lock.
    pub(crate) fn deliver(&self, index: u32, head: Head) -> (bool, Option<Request<B>>) {
        let finished = !matches!(head.body, Delivery::Streaming(_));
        let mut state = self.lock();
        let slot = &mut state.slots[index as usize];
        let request = slot.request.take();
        let abandoned = slot.abandoned;
        if !abandoned {
            slot.answer = Answer::Ready(Ok(head));
            slot.wake();
        }
        if finished {
            slot.finished = true;
            release_if_done(&mut state, index);
        }
        (abandoned, request)
    }

    /// Queues a body frame for the caller; returns the bytes now buffered, or `None` when the
    /// caller left (the rest of the body is to be discarded).
    pub(crate) fn push_frame(&self, index: u32, frame: Frame<Bytes>) -> Option<usize> {
        let mut state = self.lock();
        let slot = &mut state.slots[index as usize];
        if slot.abandoned {
            return None;
        }
        slot.frames.buffered += frame.data_ref().map_or(0, Bytes::len);
        slot.frames.queue.push_back(frame);
        slot.wake();
        Some(slot.frames.buffered)
    }

    /// Bytes buffered for the slot's caller, not yet taken.
    pub(crate) fn buffered(&self, index: u32) -> usize {
        self.lock().slots[index as usize].frames.buffered
    }

    /// The slot's response body ended (`Ok`) or failed; the connection is done with it.
    pub(crate) fn finish(&self, index: u32, end: Result<(), Error>) {
        let mut state = self.lock();
        let slot = &mut state.slots[index as usize];
        slot.finished = true;
        if !slot.abandoned {
            slot.frames.end = Some(end);
            slot.wake();
        }
        release_if_done(&mut state, index);
    }

    /// Fails a written request: `NotAnswered` when its response never began (with the request
    /// when it was kept), or the kind of the failure that cut its response short.
    pub(crate) fn unanswered(&self, index: u32, error: Error) {
        // Dropped after the guard (see `next_to_write`): a request not handed back, or the
        // error of a caller that left.
        let mut leftover: (Option<Request<B>>, Option<Error>) = (None, None);
        let mut state = self.lock();
        let slot = &mut state.slots[index as usize];
        // Handed back only when nothing of its answer arrived: a request whose response began
        // was processed, and is not to be sent again.
        let request = slot.request.take();
        let error = match request {
            Some(request) if error.kind() == ErrorKind::NotAnswered => error.with_request(request),
            other => {
                leftover.0 = other;
                error
            }
        };
        slot.finished = true;
        if slot.abandoned {
            leftover.1 = Some(error);
        } else {
            slot.answer = Answer::Ready(Err(error));
            slot.wake();
        }
        release_if_done(&mut state, index);
    }

    /// The connection ended: every queued request fails unsent (with its request), every
    /// later call too, and callers waiting for a slot hear of it.
    pub(crate) fn end(&self, why: &str) {
        // Dropped after the guard (see `next_to_write`): the requests of callers that left.
        let mut cancelled = Vec::new();
        let mut state = self.lock();
        state.ended = Some(why.to_owned());
        while let Some(index) = state.queue.pop_front() {
            let slot = &mut state.slots[index as usize];
            slot.finished = true;
            if slot.abandoned {
                cancelled.extend(slot.request.take());
            } else {
                let mut error = Error::new(ErrorKind::NotSent, why);
                if let Some(request) = slot.request.take() {
                    error = error.with_request(request);
                }
                slot.answer = Answer::Ready(Err(error));
                slot.wake();
            }
            release_if_done(&mut state, index);
        }
        wake_ready(&mut state);
    }

    /// Whether nothing more can be asked of the connection: no sender left, nothing queued.
    pub(crate) fn idle_for_good(&self) -> bool {
        let state = self.lock();
        state.senders == 0 && state.queue.is_empty()
    }
}

/// What a caller's handle reaches through, without the request body's type.
pub(crate) trait Exchange: Send + Sync {
    /// The response head, once it is here.
    fn poll_answer(&self, id: SlotId, cx: &mut Context<'_>) -> Poll<Result<Head, Error>>;
    /// The next body frame of a streaming response.
    fn poll_frame(
        &self,
        id: SlotId,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>>;
    /// The caller's handle is gone.
    fn drop_handle(&self, id: SlotId);
}

impl<B: Body + Send + 'static> Exchange for Shared<B> {
    fn poll_answer(&self, id: SlotId, cx: &mut Context<'_>) -> Poll<Result<Head, Error>> {
        let mut state = self.lock();
        let slot = &mut state.slots[id.index as usize];
        debug_assert_eq!(slot.generation, id.generation, "a handle outlived its slot");
        match std::mem::replace(&mut slot.answer, Answer::Taken) {
            Answer::Ready(answer) => {
                let streaming = matches!(
                    answer,
                    Ok(Head {
                        body: Delivery::Streaming(_),
                        ..
                    })
                );
                if !streaming {
                    slot.held = false;
                    release_if_done(&mut state, id.index);
                }
                Poll::Ready(answer)
            }
            waiting => {
                slot.answer = waiting;
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn poll_frame(
        &self,
        id: SlotId,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut state = self.lock();
        let slot = &mut state.slots[id.index as usize];
        if slot.generation != id.generation || !slot.held {
            return Poll::Ready(None);
        }
        if let Some(frame) = slot.frames.queue.pop_front() {
            slot.frames.buffered -= frame.data_ref().map_or(0, Bytes::len);
            // The connection may have paused for this body: room again.
            if let Some(waker) = &state.connection {
                waker.wake_by_ref();
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        match slot.frames.end.take() {
            Some(end) => {
                slot.held = false;
                release_if_done(&mut state, id.index);
                Poll::Ready(end.err().map(Err))
            }
            None => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    slot.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn drop_handle(&self, id: SlotId) {
        let mut state = self.lock();
        let slot = &mut state.slots[id.index as usize];
        if slot.generation != id.generation || !slot.held {
            return;
        }
        slot.held = false;
        slot.abandoned = !slot.finished;
        slot.waker = None;
        let answer = std::mem::replace(&mut slot.answer, Answer::Taken);
        let frames = std::mem::take(&mut slot.frames.queue);
        slot.frames.buffered = 0;
        release_if_done(&mut state, id.index);
        if let Some(waker) = &state.connection {
            waker.wake_by_ref();
        }
        drop(state);
        drop((answer, frames));
    }
}

/// Frees the slot when both sides are done with it, for the next `poll_ready`.
fn release_if_done<B>(state: &mut State<B>, index: u32) {
    let slot = &mut state.slots[index as usize];
    if !slot.finished || slot.held {
        return;
    }
    slot.generation = slot.generation.wrapping_add(1);
    slot.answer = Answer::Waiting;
    slot.frames.queue.clear();
    slot.frames.buffered = 0;
    slot.frames.end = None;
    slot.abandoned = false;
    slot.finished = false;
    slot.waker = None;
    slot.request = None;
    state.free.push(index);
    wake_ready(state);
}

fn wake_ready<B>(state: &mut State<B>) {
    for waker in state.ready.drain(..) {
        waker.wake();
    }
}
