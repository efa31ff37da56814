// actix-peer: a second mature peer for loadtest/compare.sh, actix-web 4 with 2 workers.
// Same routes as the demo: /plaintext, /delay/{ms}.
// usage: actix-peer [127.0.0.1:PORT]
// Vendored from ../shared/bench/peers so loadtest/ needs nothing outside the repository.

use actix_web::{web, App, HttpResponse, HttpServer};
use std::time::Duration;

async fn plaintext() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("Hello, World!")
}
async fn delay(ms: web::Path<u64>) -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(*ms)).await;
    HttpResponse::Ok().content_type("text/plain").body(format!("/delay/{}\n", *ms))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9002".into());
    eprintln!("actix-peer on {addr}");
    HttpServer::new(|| App::new().route("/plaintext", web::get().to(plaintext)).route("/delay/{ms}", web::get().to(delay)))
        .workers(2)
        .bind(addr)?
        .run()
        .await
}
