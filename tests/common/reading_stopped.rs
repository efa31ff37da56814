//! When the engine stops reading a connection, and why, as its own `reading stopped` trace event
//! (`conn/keep_alive.rs`) reports it: the one signal a test can wait on that the engine has
//! read a client's EOF, which no count or metric shows.
//!
//! The subscriber is the process's global one, installed once, and wants that one event and
//! nothing else (the engine's spans stay disabled, as in every other test). A watch sees the
//! events of its own thread, which is where a `#[tokio::test]` runtime runs the server. Not a
//! thread-default subscriber: while it is the only one, tracing computes a callsite's interest
//! on whichever thread first reaches it, so another test's thread would switch the event off.

use std::cell::RefCell;
use std::fmt::Debug;
use std::sync::Once;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

thread_local! {
    /// This thread's watch: `None` when not watching, `Some(None)` until reading stops, then
    /// the first reason.
    static WATCH: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

/// Watches this thread's `reading stopped` events until dropped.
pub struct ReadingStopped(());

impl ReadingStopped {
    pub fn watch() -> ReadingStopped {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            tracing::subscriber::set_global_default(Watcher)
                .expect("no other global subscriber in this test binary");
        });
        // A callsite first reached on another thread while the subscriber was being installed
        // may have cached "never"; recomputed now that it is in place.
        tracing::callsite::rebuild_interest_cache();
        WATCH.with(|watch| *watch.borrow_mut() = Some(None));
        ReadingStopped(())
    }

    /// The reason (`Stop`'s variant name, e.g. `Eof`), once reading has stopped.
    pub fn why(&self) -> Option<String> {
        WATCH.with(|watch| watch.borrow().clone().flatten())
    }
}

impl Drop for ReadingStopped {
    fn drop(&mut self) {
        WATCH.with(|watch| *watch.borrow_mut() = None);
    }
}

/// Wants the engine's keep-alive events only, and keeps the first `reading stopped` reason of
/// each watching thread.
struct Watcher;

fn is_keep_alive_event(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && metadata.target() == "pipelined::conn::keep_alive"
}

impl Subscriber for Watcher {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_keep_alive_event(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        is_keep_alive_event(metadata)
    }

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message.as_deref() != Some("reading stopped") {
            return;
        }
        let _ = WATCH.try_with(|watch| {
            if let Some(why @ None) = &mut *watch.borrow_mut() {
                *why = Some(fields.why.unwrap_or_default());
            }
        });
    }

    // No span is ever enabled (`register_callsite`), so these are never called with one.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    why: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "why" => self.why = Some(format!("{value:?}")),
            _ => {}
        }
    }
}
