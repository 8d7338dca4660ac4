//! The `channels` table (seeded, read-only at run time; [`crate::domain::ChannelKind`] names its
//! rows).

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
