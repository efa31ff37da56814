//! The ordered slots: **where response order is enforced**.
//!
//! This is Go's `chan chan *http.Response` in Rust. Every request gets a place in the response
//! order when it is started, and both halves of the rule are here:
//! - [`Order::place`] answers "encode now or queue": a response that is finished while every
//!   earlier one has already been encoded skips the queue and is encoded straight into the
//!   write buffer (the common case: a pipelined batch of quick handlers costs no slot at all);
//!   any other waits here in a [`Slot`];
//! - [`Order::poll_front`] gives the connection only the slot at the front, once it has its
//!   response: handlers may finish in any order, responses leave in request order.
//!
//! The queue holds at most `Config::max_pipeline_depth` slots; when it is full the connection
//! stops reading, so TCP pushes back on a client that pipelines faster than handlers finish.
//!
//! A request body that fails while its request's answer still waits here changes that answer
//! ([`Order::body_failed`]): the status is only final once the head is encoded.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::slot::{Outcome, Slot, SlotKind, Timing};
use crate::body::BodyError;
use crate::timing::Stamp;

/// [`Order::place`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// Encode it now: it is next in order and finished.
    Now,
    /// It waits in the queue.
    Queue,
}

/// Responses owed, in request order, that could not be encoded when their request was read.
pub(crate) struct Order<B> {
    slots: VecDeque<Slot<B>>,
    capacity: usize,
    /// The newest slot's request body failed this way (see [`Order::body_failed`]).
    failed_body: Option<BodyError>,
}

impl<B> Order<B> {
    /// An empty order holding at most `capacity` slots.
    pub(crate) fn new(capacity: usize) -> Self {
        Order {
            slots: VecDeque::new(),
            capacity,
            failed_body: None,
        }
    }

    /// No response is waiting: a finished response may be encoded at once.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The pipeline is as deep as allowed: read nothing more until the front is written.
    pub(crate) fn is_full(&self) -> bool {
        self.slots.len() >= self.capacity
    }

    /// Where a request's response goes: [`Place::Now`] (encoded at once, no slot) when it is
    /// `finished` (not a handler still running), no earlier response waits here, and `writable`
    /// (the write side has encoded everything before it and has room, and the request's body
    /// need not be decoded first); otherwise [`Place::Queue`]: [`Order::push`] it, behind every
    /// earlier one. It decides without taking the response, so the common case moves nothing.
    pub(crate) fn place(&self, finished: bool, writable: bool) -> Place {
        if finished && writable && self.slots.is_empty() {
            Place::Now
        } else {
            Place::Queue
        }
    }

    /// Queues a slot that [`Order::place`] did not send on at once.
    pub(crate) fn push(&mut self, slot: Slot<B>) {
        self.slots.push_back(slot);
    }

    /// The front slot, taken once its response is in hand (a spawned handler's arrives
    /// through its channel; one that panicked is answered 500). `Ready(None)` when nothing
    /// waits; `Pending` while the front handler runs (its answer wakes the task).
    pub(crate) fn poll_front(&mut self, cx: &mut Context<'_>) -> Poll<Option<Slot<B>>> {
        let Some(front) = self.slots.front_mut() else {
            return Poll::Ready(None);
        };
        if let SlotKind::Pending(rx) = &mut front.kind {
            let received = std::task::ready!(Pin::new(rx).poll(cx));
            let (outcome, finished) = received.unwrap_or_else(|_| {
                tracing::error!("handler panicked; answering 500");
                (Outcome::internal_error(), Stamp::now())
            });
            front.timing = front.timing.map(|t| Timing { finished, ..t });
            front.kind = SlotKind::Ready(outcome);
        }
        Poll::Ready(self.pop_front())
    }

    /// Records that the body being read failed. Its request is the newest one started (the
    /// next head waits for the body's end, and reading stops when it fails), so its answer is
    /// the newest slot while it waits here, or already encoded when the queue is empty: then
    /// the head has been written and only closing is left.
    pub(crate) fn body_failed(&mut self, error: BodyError) {
        if !self.slots.is_empty() {
            self.failed_body = Some(error);
        }
    }

    /// Takes the front slot; the last slot carries the body's error in place of the handler's
    /// response if its body failed.
    fn pop_front(&mut self) -> Option<Slot<B>> {
        let mut slot = self.slots.pop_front()?;
        if self.slots.is_empty() {
            if let Some(error) = self.failed_body.take() {
                slot.kind = match slot.kind {
                    SlotKind::Ready(outcome) => SlotKind::Ready(outcome.with_failed_body(error)),
                    other => other,
                };
            }
        }
        Some(slot)
    }

    /// Gives the queue's memory back when it is empty: for connections gone idle, not after
    /// every batch, which would reallocate it.
    pub(crate) fn release_memory(&mut self) {
        if self.slots.is_empty() {
            self.slots = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http::{Response, StatusCode, Version};
    use http_body_util::Empty;
    use tokio::sync::oneshot;

    use super::{Order, Place};
    use crate::body::BodyError;
    use crate::conn::slot::{Finished, Outcome, Slot, SlotKind, Timing};
    use crate::proto::encode::RequestInfo;
    use crate::timing::Stamp;

    type B = Empty<Bytes>;

    fn info() -> RequestInfo {
        RequestInfo {
            version: Version::HTTP_11,
            head_method: false,
        }
    }

    /// A finished slot answering `status`, tagged by its status so order can be read back.
    fn ready(status: u16) -> Slot<B> {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Slot {
            kind: SlotKind::Ready(Outcome::response(response, info())),
            info: info(),
            timing: None,
            span: tracing::Span::none(),
            labels: crate::conn::slot::Labels::unknown(),
        }
    }

    /// Places a slot that must wait (the write side is busy).
    fn queue(order: &mut Order<B>, slot: Slot<B>) {
        let finished = !matches!(slot.kind, SlotKind::Pending(_));
        assert_eq!(order.place(finished, false), Place::Queue, "not writable");
        order.push(slot);
    }

    fn pending() -> (Slot<B>, oneshot::Sender<Finished<B>>) {
        let (tx, rx) = oneshot::channel();
        let mut slot = ready(200);
        slot.kind = SlotKind::Pending(rx);
        (slot, tx)
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn status(slot: &Slot<B>) -> u16 {
        match &slot.kind {
            SlotKind::Ready(Outcome::Response(response, _)) => response.status().as_u16(),
            SlotKind::Ready(Outcome::Engine { error, .. }) => error.status.as_u16(),
            SlotKind::Ready(Outcome::Inline(respond, _)) => respond.status.as_u16(),
            SlotKind::Pending(_) => panic!("pending"),
            SlotKind::Continue => 100,
        }
    }

    #[test]
    fn slots_leave_in_the_order_they_were_pushed() {
        let mut order = Order::new(4);
        assert!(order.is_empty());
        for s in [201, 202, 203] {
            queue(&mut order, ready(s));
        }
        assert!(!order.is_empty());
        assert_eq!(status(order.slots.front().unwrap()), 201);
        let popped: Vec<u16> = std::iter::from_fn(|| order.pop_front())
            .map(|s| status(&s))
            .collect();
        assert_eq!(popped, [201, 202, 203]);
        assert!(order.is_empty());
        assert!(order.pop_front().is_none());
    }

    #[test]
    fn full_at_capacity_and_not_before() {
        let mut order = Order::new(2);
        queue(&mut order, ready(200));
        assert!(!order.is_full());
        queue(&mut order, ready(200));
        assert!(order.is_full());
        order.pop_front();
        assert!(!order.is_full());
    }

    #[test]
    fn a_failed_body_replaces_the_newest_success_when_it_reaches_the_front() {
        let mut order = Order::new(4);
        queue(&mut order, ready(200));
        queue(&mut order, ready(201));
        order.body_failed(BodyError::TooLarge);
        assert_eq!(
            status(&order.pop_front().unwrap()),
            200,
            "an earlier one stands"
        );
        assert_eq!(status(&order.pop_front().unwrap()), 413);
    }

    #[test]
    fn a_failed_body_leaves_an_error_answer_as_it_is() {
        let mut order = Order::new(4);
        queue(&mut order, ready(500));
        order.body_failed(BodyError::TooLarge);
        assert_eq!(status(&order.pop_front().unwrap()), 500);
    }

    #[test]
    fn a_failed_body_with_nothing_queued_changes_no_later_answer() {
        let mut order = Order::new(4);
        order.body_failed(BodyError::TooLarge);
        queue(&mut order, ready(200));
        assert_eq!(status(&order.pop_front().unwrap()), 200);
    }

    #[test]
    fn a_failed_body_is_used_once() {
        let mut order = Order::new(4);
        queue(&mut order, ready(200));
        order.body_failed(BodyError::TooLarge);
        assert_eq!(status(&order.pop_front().unwrap()), 413);
        queue(&mut order, ready(200));
        assert_eq!(status(&order.pop_front().unwrap()), 200);
    }

    #[test]
    fn release_memory_empties_only_an_empty_queue() {
        let mut order = Order::new(4);
        queue(&mut order, ready(200));
        order.release_memory();
        assert_eq!(status(&order.pop_front().unwrap()), 200);
        assert!(
            order.slots.capacity() > 0,
            "the queue's memory is kept while in use"
        );
        order.release_memory();
        assert!(order.is_empty());
        assert_eq!(
            order.slots.capacity(),
            0,
            "an idle connection's queue keeps its memory"
        );
    }

    #[test]
    fn a_finished_response_with_nothing_before_it_is_encoded_now() {
        let order: Order<B> = Order::new(4);
        assert_eq!(order.place(true, true), Place::Now);
    }

    #[test]
    fn a_response_waits_when_the_write_side_is_busy_or_its_body_comes_first() {
        let order: Order<B> = Order::new(4);
        assert_eq!(order.place(true, false), Place::Queue);
    }

    #[test]
    fn a_finished_response_behind_a_waiting_one_waits_too() {
        let mut order = Order::new(4);
        queue(&mut order, ready(201));
        assert_eq!(
            order.place(true, true),
            Place::Queue,
            "it would overtake 201"
        );
        order.push(ready(202));
        let left: Vec<u16> = std::iter::from_fn(|| order.pop_front())
            .map(|s| status(&s))
            .collect();
        assert_eq!(left, [201, 202]);
    }

    #[test]
    fn a_running_handler_always_takes_a_slot() {
        let order: Order<B> = Order::new(4);
        assert_eq!(order.place(false, true), Place::Queue);
    }

    #[test]
    fn the_front_leaves_only_once_its_handler_answered() {
        let mut order = Order::new(4);
        let (slot, tx) = pending();
        queue(&mut order, slot);
        queue(&mut order, ready(202));
        assert!(order.poll_front(&mut cx()).is_pending(), "202 waits for it");
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::CREATED;
        let answer = Outcome::response(response, info());
        assert!(tx.send((answer, Stamp::now())).is_ok());
        let Poll::Ready(Some(front)) = order.poll_front(&mut cx()) else {
            panic!("the front answered");
        };
        assert_eq!(status(&front), 201);
        let Poll::Ready(Some(next)) = order.poll_front(&mut cx()) else {
            panic!("then 202");
        };
        assert_eq!(status(&next), 202);
        assert!(matches!(order.poll_front(&mut cx()), Poll::Ready(None)));
    }

    #[test]
    fn a_handler_that_panicked_is_answered_500_in_its_place() {
        let mut order = Order::new(4);
        let (slot, tx) = pending();
        queue(&mut order, slot);
        drop(tx);
        let Poll::Ready(Some(front)) = order.poll_front(&mut cx()) else {
            panic!("the front resolved");
        };
        assert_eq!(status(&front), 500);
    }

    #[test]
    fn a_spawned_handler_s_finish_time_is_kept_for_its_timings() {
        let mut order = Order::new(4);
        let (mut slot, tx) = pending();
        let started = Stamp::now();
        slot.timing = Some(Timing {
            started,
            finished: started,
        });
        queue(&mut order, slot);
        let finished = std::iter::repeat_with(Stamp::now)
            .find(|&now| now != started)
            .expect("the clock moves");
        assert!(tx.send((Outcome::internal_error(), finished)).is_ok());
        let Poll::Ready(Some(front)) = order.poll_front(&mut cx()) else {
            panic!("the front answered");
        };
        let timing = front.timing.expect("timed");
        assert_eq!(timing.started, started);
        assert_eq!(
            timing.finished, finished,
            "the handler time runs to when it finished, not when it started"
        );
    }
}
