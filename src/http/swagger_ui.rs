//! Swagger UI on `/docs` (200 at that very path, as `curl http://localhost:8000/docs` expects),
//! from the assets built into the binary, so it works offline.
//!
//! The page is served at `/docs` and at `/docs/`; its assets live under `/docs/`. Swagger's
//! page names them relatively (`./swagger-ui.css`), which from `/docs` would resolve to the site
//! root, so the page carries `<base href="/docs/">`.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa_swagger_ui::Config;

use super::AppState;
use crate::error::ApiError;

/// Where the UI fetches the document (served by `openapi::router`).
const DOCUMENT_URL: &str = "/openapi.json";
const BASE: &str = r#"<base href="/docs/">"#;

pub fn router() -> Router<AppState> {
    let config = Arc::new(Config::new([DOCUMENT_URL]));
    let page = Arc::new(index(&config));
    let at_root = {
        let page = page.clone();
        move || std::future::ready(respond(&page))
    };
    let in_folder = move || std::future::ready(respond(&page));
    Router::new()
        .route("/docs", get(at_root))
        .route("/docs/", get(in_folder))
        .route(
            "/docs/{*asset}",
            get(move |Path(asset): Path<String>| std::future::ready(file(&asset, &config))),
        )
}

/// The page, with its base set to the assets' folder; built once.
fn index(config: &Arc<Config<'static>>) -> Result<String, String> {
    match utoipa_swagger_ui::serve("index.html", config.clone()) {
        Ok(Some(page)) => Ok(String::from_utf8_lossy(&page.bytes).replacen(
            "<head>",
            &format!("<head>{BASE}"),
            1,
        )),
        Ok(None) => Err("Swagger UI's page is missing".into()),
        Err(e) => Err(format!("Swagger UI's page: {e}")),
    }
}

fn respond(page: &Result<String, String>) -> Response {
    match page {
        Ok(html) => ([(CONTENT_TYPE, "text/html; charset=utf-8")], html.clone()).into_response(),
        Err(why) => ApiError::Internal(why.clone()).into_response(),
    }
}

fn file(asset: &str, config: &Arc<Config<'static>>) -> Response {
    match utoipa_swagger_ui::serve(asset, config.clone()) {
        Ok(Some(file)) => {
            ([(CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response()
        }
        Ok(None) => ApiError::not_found("asset").into_response(),
        Err(e) => ApiError::Internal(format!("Swagger UI asset {asset}: {e}")).into_response(),
    }
}
