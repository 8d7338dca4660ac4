//! The `channels` table (seeded, read-only at run time).

use super::Exec;
use crate::args;
use crate::domain::Channel;

const COLUMNS: &str = "id, name, display_name, is_active, created_at";

pub async fn list(ex: &mut Exec<'_>) -> sqlx::Result<Vec<Channel>> {
    ex.fetch_all(
        &format!("SELECT {COLUMNS} FROM channels ORDER BY id"),
        args![],
    )
    .await
}

pub async fn by_name(ex: &mut Exec<'_>, name: &str) -> sqlx::Result<Option<Channel>> {
    ex.fetch_optional(
        &format!("SELECT {COLUMNS} FROM channels WHERE name = $1"),
        args![name],
    )
    .await
}

pub async fn by_id(ex: &mut Exec<'_>, id: i64) -> sqlx::Result<Option<Channel>> {
    ex.fetch_optional(
        &format!("SELECT {COLUMNS} FROM channels WHERE id = $1"),
        args![id],
    )
    .await
}
