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
