//! Request extractors whose rejections use the contract's error shapes: `JsonBody` (415, 413,
//! 408, 400, and 422 listing every bad field at `loc: ["body", …]`), `Params` (422 with
//! `loc: ["query", name]`) and `PathId` (422 with `loc: ["path", "id"]`).

mod fields;
mod json;
mod params;
mod path;

pub use json::{parse_json, read_body, JsonBody};
pub use params::Params;
pub use path::PathId;

use crate::error::ApiError;

/// Refuses an identifier longer than [`crate::domain::MAX_ID_CHARS`].
pub fn check_id_len(loc: &[&str], value: &str) -> Result<(), ApiError> {
    let max = crate::domain::MAX_ID_CHARS;
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            loc,
            format!("String should have at most {max} characters"),
            "string_too_long",
        ));
    }
    Ok(())
}
