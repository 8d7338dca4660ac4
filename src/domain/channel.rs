//! The channels the inbox speaks, as a type. The `channels` table is seeded with exactly these
//! rows (ids 1, 2, 3) and never changes at run time, so a kind maps to its row without a query.

use serde::{Deserialize, Serialize};

/// A messaging channel. `Gmail` is the email channel (any IMAP/SMTP mailbox); the name stays
/// because clients use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Whatsapp,
    Instagram,
    Gmail,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [
        ChannelKind::Whatsapp,
        ChannelKind::Instagram,
        ChannelKind::Gmail,
    ];

    /// The channel's `name`, as clients and the `channels` table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Instagram => "instagram",
            ChannelKind::Gmail => "gmail",
        }
    }

    /// The id of the channel's seeded row (see the initial migration).
    pub fn id(self) -> i64 {
        match self {
            ChannelKind::Whatsapp => 1,
            ChannelKind::Instagram => 2,
            ChannelKind::Gmail => 3,
        }
    }

    pub fn parse(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn from_id(id: i64) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.id() == id)
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read from a `channel_id` column: rows name their channel by the seeded id.
macro_rules! id_column {
    ($db:ty, $info:ty, $value:ty) => {
        impl sqlx::Type<$db> for ChannelKind {
            fn type_info() -> $info {
                <i64 as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &$info) -> bool {
                <i64 as sqlx::Type<$db>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, $db> for ChannelKind {
            fn decode(value: $value) -> Result<Self, sqlx::error::BoxDynError> {
                let id = <i64 as sqlx::Decode<$db>>::decode(value)?;
                ChannelKind::from_id(id).ok_or_else(|| format!("unknown channel id {id}").into())
            }
        }
    };
}
id_column!(
    sqlx::Postgres,
    sqlx::postgres::PgTypeInfo,
    sqlx::postgres::PgValueRef<'r>
);
id_column!(
    sqlx::Sqlite,
    sqlx::sqlite::SqliteTypeInfo,
    sqlx::sqlite::SqliteValueRef<'r>
);
