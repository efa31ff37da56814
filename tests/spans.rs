//! The engine's spans, as a tracing pipeline sees them: `http.connection` holds `http.request`
//! spans with OpenTelemetry's HTTP field names and the pipeline's own, and a tower-http
//! `TraceLayer` span (named `request`) nests inside without a name clash. Alone in its file: it
//! installs the process-wide subscriber.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use common::{get, serve, Client};
use pipelined::{get as route_get, get_inline, Answer, Router};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// How long `/wait`'s handler takes.
const WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// One span as captured: its name, its parent's name, and its fields as text.
#[derive(Clone, Debug, Default)]
struct Captured {
    name: &'static str,
    parent: Option<&'static str>,
    fields: HashMap<String, String>,
}

/// Records every span's name, parent and fields (including those recorded later).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<HashMap<u64, Captured>>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").replace('"', ""),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("a new span is registered");
        let mut captured = Captured {
            name: span.name(),
            parent: span.parent().map(|p| p.name()),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut captured.fields));
        self.0.lock().unwrap().insert(id.into_u64(), captured);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(captured) = self.0.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut captured.fields));
        }
    }
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Captured> {
        let spans = self.0.lock().unwrap();
        spans.values().filter(|s| s.name == name).cloned().collect()
    }
}

// `/wait` sleeps 20 ms (the handler's own behaviour, not synchronisation): its handler time is
// at least that, and the answer finished at once behind it waited for the rest of it. (The
// timing clock is real time, not tokio's: a paused tokio clock would not stop it.)
#[tokio::test]
async fn request_spans_carry_http_fields_and_nest_with_tower_http() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber here");

    let app = Router::new()
        .route("/x/{id}", route_get(|_req| async { "x\n" }))
        .route(
            "/wait",
            route_get(|_req| async {
                tokio::time::sleep(WAIT).await;
                "waited\n"
            }),
        )
        .layer(tower_http::trace::TraceLayer::new_for_http());
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}{}", get("/x/1"), get("/x/2"), get("/wait")))
        .await;
    for response in client.responses(3).await {
        assert_eq!(response.status, 200);
    }
    client
        .send(format!("{}{}", get("/wait"), get("/x/3")))
        .await;
    for response in client.responses(2).await {
        assert_eq!(response.status, 200);
    }
    drop(client);
    server.shutdown().await;

    let mut requests = capture.named("http.request");
    requests.sort_by_key(|s| s.fields["pipeline.seq"].parse::<u32>().unwrap());
    assert_eq!(requests.len(), 5, "one http.request span per request");
    for (i, span) in requests.iter().take(2).enumerate() {
        assert_eq!(span.parent, Some("http.connection"));
        assert_eq!(span.fields["http.request.method"], "GET");
        assert_eq!(span.fields["url.path"], format!("/x/{}", i + 1));
        assert_eq!(
            span.fields["http.route"], "/x/{id}",
            "the pattern, from the router"
        );
        assert_eq!(span.fields["network.protocol.version"], "1.1");
        assert_eq!(span.fields["http.response.status_code"], "200");
        assert_eq!(span.fields["pipeline.seq"], (i + 1).to_string());
        assert!(span.fields.contains_key("pipeline.queue_ms"));
    }
    // The handler and queue times, in milliseconds: `/wait`'s handler ran its 20 ms; `/x/3`,
    // started at the same reading of the clock and finished at once behind it, waited for the
    // rest of them (0.1 ms: the slack of two clock readings), and longer than `/wait` did
    // between its finish and its answer (that answer came first).
    let ms = |span: &Captured, field: &str| span.fields[field].parse::<f64>().unwrap();
    let (waited, behind) = (&requests[3], &requests[4]);
    assert_eq!(waited.fields["url.path"], "/wait");
    assert_eq!(behind.fields["url.path"], "/x/3");
    let wait_ms = WAIT.as_secs_f64() * 1000.0;
    assert!(
        ms(waited, "pipeline.handler_ms") >= wait_ms - 0.1,
        "{waited:?}"
    );
    let (handler, queue) = (
        ms(behind, "pipeline.handler_ms"),
        ms(behind, "pipeline.queue_ms"),
    );
    assert!(handler + queue >= wait_ms - 0.1, "{behind:?}");
    assert!(
        queue >= ms(waited, "pipeline.queue_ms"),
        "{waited:?} {behind:?}"
    );
    let connection = &capture.named("http.connection")[0];
    assert!(connection.fields["client.address"].starts_with("127.0.0.1:"));
    let tower = capture.named("request");
    assert_eq!(tower.len(), 5, "tower-http's own span per request");
    for span in &tower {
        assert_eq!(span.parent, Some("http.request"), "nested, not clashing");
    }

    // The inline path (an unlayered router's `get_inline` routes) numbers its spans in the same
    // sequence as the Service requests beside them, and records the route the same way.
    let app = Router::new()
        .route("/i/{id}", get_inline(|_head| Answer::text("i\n")))
        .route("/s", route_get(|_req| async { "s\n" }));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let batch = format!("{}{}{}", get("/i/1"), get("/s"), get("/i/2"));
    client.send(batch).await;
    for response in client.responses(3).await {
        assert_eq!(response.status, 200);
    }
    drop(client);
    server.shutdown().await;
    let mut second: Vec<Captured> = capture.named("http.request");
    second.retain(|s| s.fields["url.path"].starts_with("/i/") || s.fields["url.path"] == "/s");
    second.sort_by_key(|s| s.fields["pipeline.seq"].parse::<u32>().unwrap());
    let seen: Vec<(&str, &str, &str)> = second
        .iter()
        .map(|s| {
            let field = |name: &str| s.fields.get(name).map_or("", String::as_str);
            (
                field("pipeline.seq"),
                field("url.path"),
                field("http.route"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1", "/i/1", "/i/{id}"),
            ("2", "/s", "/s"),
            ("3", "/i/2", "/i/{id}")
        ],
        "one span per request, numbered in request order on both paths"
    );
    for span in &second {
        assert_eq!(span.parent, Some("http.connection"));
        assert_eq!(span.fields["http.response.status_code"], "200");
    }
}
