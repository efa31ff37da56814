//! The bounded slot queue between a connection's reader and writer.
//!
//! A `VecDeque` behind a mutex, with two `Notify`s for the two directions of waiting. It does
//! what a bounded `tokio::sync::mpsc` channel does here, with one difference that matters for
//! idle keep-alive connections: its memory can be given back when the connection goes idle,
//! where an mpsc channel keeps a block of `capacity` slots (about 7 KiB at the default depth)
//! for the life of the connection. Both ends live on the connection's task, so the mutex is never contended.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Signalled when an item is pushed or the sender goes away.
    pushed: Notify,
    /// Signalled when an item is taken or the receiver goes away.
    taken: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock can only come from VecDeque itself; the state is
        // still a valid queue, so a poisoned lock is used as is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The reader's end.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The writer's end.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

/// A queue holding at most `capacity` items.
pub(crate) fn queue<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            sender_gone: false,
            receiver_gone: false,
        }),
        pushed: Notify::new(),
        taken: Notify::new(),
        capacity,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// Why an item could not be pushed; the item comes back.
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

impl<T> Sender<T> {
    /// Pushes `item` if there is room.
    pub(crate) fn try_send(&self, item: T) -> Result<(), PushError<T>> {
        let mut state = self.0.lock();
        if state.receiver_gone {
            return Err(PushError::Closed(item));
        }
        if state.items.len() >= self.0.capacity {
            return Err(PushError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.0.pushed.notify_one();
        Ok(())
    }

    /// Pushes `item`, waiting while the queue is full; gives it back if the receiver is gone.
    pub(crate) async fn send(&self, mut item: T) -> Result<(), T> {
        loop {
            let taken = self.0.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(back)) => return Err(back),
                Err(PushError::Full(back)) => item = back,
            }
            taken.await;
        }
    }
}

impl<T> Sender<T> {
    /// Items waiting to be taken.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().items.len()
    }

    /// Gives the queue's memory back if it is empty: for connections gone idle (an idle
    /// connection then holds no queue), not after every batch, which would reallocate it.
    pub(crate) fn release_memory(&self) {
        let mut state = self.0.lock();
        if state.items.is_empty() {
            state.items = VecDeque::new();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.pushed.notify_one();
    }
}

/// Why nothing was taken.
pub(crate) enum TakeError {
    Empty,
    /// Empty, and the sender is gone: nothing more will come.
    Closed,
}

impl<T> Receiver<T> {
    /// Takes the next item if there is one.
    pub(crate) fn try_recv(&self) -> Result<T, TakeError> {
        let mut state = self.0.lock();
        match state.items.pop_front() {
            Some(item) => {
                drop(state);
                self.0.taken.notify_one();
                Ok(item)
            }
            None if state.sender_gone => Err(TakeError::Closed),
            None => Err(TakeError::Empty),
        }
    }

    /// Takes the next item, waiting for one; `None` once the sender is gone and all is taken.
    pub(crate) async fn recv(&self) -> Option<T> {
        loop {
            let pushed = self.0.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            match self.try_recv() {
                Ok(item) => return Some(item),
                Err(TakeError::Closed) => return None,
                Err(TakeError::Empty) => pushed.await,
            }
        }
    }

    /// True when the sender is gone and nothing is left: whatever is being written is last.
    pub(crate) fn is_finished(&self) -> bool {
        let state = self.0.lock();
        state.sender_gone && state.items.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.lock().receiver_gone = true;
        self.0.taken.notify_one();
    }
}
