//! The ordered slots: **where response order is enforced**.
//!
//! This is Go's `chan chan *http.Response` in Rust. Every request gets a place in the response
//! order when it is dispatched. A response that is finished while every earlier one has already
//! been encoded skips the queue and is encoded straight into the write buffer (the common case:
//! a pipelined batch of quick handlers costs no slot at all). Any other response waits here in
//! a [`Slot`], and the connection encodes only the slot at the front, once it has its response:
//! handlers may finish in any order, responses leave in request order.
//!
//! The queue holds at most `Config::max_pipeline_depth` slots; when it is full the connection
//! stops reading, so TCP pushes back on a client that pipelines faster than handlers finish.
//!
//! A request body that fails while its request's answer still waits here changes that answer
//! ([`Order::body_failed`]): the status is only final once the head is encoded.

use std::collections::VecDeque;

use super::slot::{Slot, SlotKind};
use crate::body::BodyError;

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

    /// Appends a slot behind every earlier request's.
    pub(crate) fn push(&mut self, slot: Slot<B>) {
        self.slots.push_back(slot);
    }

    /// The slot whose response goes next.
    pub(crate) fn front_mut(&mut self) -> Option<&mut Slot<B>> {
        self.slots.front_mut()
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

    /// Takes the front slot once its response is in hand; the last slot carries the body's
    /// error in place of the handler's response if its body failed.
    pub(crate) fn pop_front(&mut self) -> Option<Slot<B>> {
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
    use bytes::Bytes;
    use http::{Response, StatusCode, Version};
    use http_body_util::Empty;

    use super::Order;
    use crate::body::BodyError;
    use crate::conn::slot::{Outcome, Slot, SlotKind};
    use crate::proto::encode::RequestInfo;

    type B = Empty<Bytes>;

    fn info() -> RequestInfo {
        RequestInfo {
            version: Version::HTTP_11,
            head: false,
        }
    }

    /// A finished slot answering `status`, tagged by its status so order can be read back.
    fn ready(status: u16) -> Slot<B> {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Slot {
            kind: SlotKind::Ready(Outcome::response(response, info())),
            info: info(),
            close: false,
            timing: None,
            span: tracing::Span::none(),
            labels: crate::conn::slot::Labels::unknown(),
        }
    }

    fn status(slot: &Slot<B>) -> u16 {
        match &slot.kind {
            SlotKind::Ready(Outcome::Response(response, _)) => response.status().as_u16(),
            SlotKind::Ready(Outcome::Engine { error, .. }) => error.status.as_u16(),
            SlotKind::Pending(_) => panic!("pending"),
            SlotKind::Continue => 100,
        }
    }

    #[test]
    fn slots_leave_in_the_order_they_were_pushed() {
        let mut order = Order::new(4);
        assert!(order.is_empty());
        for s in [201, 202, 203] {
            order.push(ready(s));
        }
        assert!(!order.is_empty());
        assert_eq!(status(order.front_mut().unwrap()), 201);
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
        order.push(ready(200));
        assert!(!order.is_full());
        order.push(ready(200));
        assert!(order.is_full());
        order.pop_front();
        assert!(!order.is_full());
    }

    #[test]
    fn a_failed_body_replaces_the_newest_success_when_it_reaches_the_front() {
        let mut order = Order::new(4);
        order.push(ready(200));
        order.push(ready(201));
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
        order.push(ready(500));
        order.body_failed(BodyError::TooLarge);
        assert_eq!(status(&order.pop_front().unwrap()), 500);
    }

    #[test]
    fn a_failed_body_with_nothing_queued_changes_no_later_answer() {
        let mut order = Order::new(4);
        order.body_failed(BodyError::TooLarge);
        order.push(ready(200));
        assert_eq!(status(&order.pop_front().unwrap()), 200);
    }

    #[test]
    fn a_failed_body_is_used_once() {
        let mut order = Order::new(4);
        order.push(ready(200));
        order.body_failed(BodyError::TooLarge);
        assert_eq!(status(&order.pop_front().unwrap()), 413);
        order.push(ready(200));
        assert_eq!(status(&order.pop_front().unwrap()), 200);
    }

    #[test]
    fn release_memory_empties_only_an_empty_queue() {
        let mut order = Order::new(4);
        order.push(ready(200));
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
}
