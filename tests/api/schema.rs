//! The two migration folders describe the same schema: after migrating a fresh database of
//! each backend, the tables, their columns and nullability, primary keys, unique constraints
//! and named indexes (with their key columns and uniqueness) are the same. Types are not
//! compared: the dialects spell them differently (TIMESTAMPTZ and TEXT hold the same values).

use std::collections::BTreeSet;

use sqlx::{Connection, Row};

use crate::helpers::{fresh_database, postgres_available, Backend};

/// One fact about the schema, comparable across backends.
type Fact = String;

#[tokio::test]
async fn postgres_and_sqlite_migrations_describe_the_same_schema() {
    if !postgres_available() {
        return;
    }
    let postgres = postgres_facts().await;
    let sqlite = sqlite_facts().await;
    assert!(postgres.len() > 40, "too few facts read: {postgres:#?}");
    // SQLite draws each stamp as MAX(stamp) + 1 through this index; PostgreSQL draws them from a
    // sequence and has no index on stamp (it would keep every conversation update from being HOT).
    let sqlite_only = "index conversations_stamp_idx on conversations(stamp)".to_string();
    let sqlite: BTreeSet<Fact> = sqlite.into_iter().filter(|f| *f != sqlite_only).collect();
    let only_pg: Vec<_> = postgres.difference(&sqlite).collect();
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    assert!(
        only_pg.is_empty() && only_sqlite.is_empty(),
        "the schemas differ\nonly in PostgreSQL: {only_pg:#?}\nonly in SQLite: {only_sqlite:#?}"
    );
}

/// An index key column: its name, or `<expr>` for an expression.
fn key(column: Option<String>) -> String {
    match column {
        Some(c) if c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => c,
        _ => "<expr>".into(),
    }
}

async fn migrated(backend: Backend) -> String {
    let (url, _) = fresh_database(backend).await;
    let config = switchboard::config::Config::with(&[("DATABASE_URL", url.as_str())])
        .expect("configuration");
    switchboard::app::open_database(&config)
        .await
        .expect("migrate")
        .close()
        .await;
    url
}

async fn postgres_facts() -> BTreeSet<Fact> {
    let url = migrated(Backend::Postgres).await;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let mut facts = BTreeSet::new();
    let columns = sqlx::query(
        "SELECT table_name::text, column_name::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("columns");
    for row in columns {
        let (table, column, nullable): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let null = if nullable == "YES" {
            "null"
        } else {
            "not null"
        };
        facts.insert(format!("column {table}.{column} {null}"));
    }
    let constraints = sqlx::query(
        "SELECT c.contype::text, t.relname::text, \
                array_to_string(ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) \
                  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o), ',') \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_namespace s ON s.oid = t.relnamespace \
         WHERE s.nspname = 'public' AND c.contype IN ('p', 'u') AND t.relname NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("constraints");
    for row in constraints {
        let (kind, table, columns): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let kind = if kind == "p" { "primary key" } else { "unique" };
        facts.insert(format!("{kind} {table}({columns})"));
    }
    let indexes = sqlx::query(
        "SELECT i.relname::text, t.relname::text, x.indisunique, x.indnkeyatts::int \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace s ON s.oid = t.relnamespace \
         WHERE s.nspname = 'public' AND t.relname NOT LIKE '\\_sqlx%' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&mut conn)
    .await
    .expect("indexes");
    for row in indexes {
        let (name, table, unique, keys): (String, String, bool, i32) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let mut columns = Vec::new();
        for k in 1..=keys {
            let column: Option<String> =
                sqlx::query_scalar("SELECT pg_get_indexdef($1::regclass, $2, true)")
                    .bind(&name)
                    .bind(k)
                    .fetch_one(&mut conn)
                    .await
                    .expect("index column");
            columns.push(key(column.map(|c| c.trim_matches('"').to_string())));
        }
        let unique = if unique { "unique " } else { "" };
        facts.insert(format!(
            "{unique}index {name} on {table}({})",
            columns.join(",")
        ));
    }
    facts
}

async fn sqlite_facts() -> BTreeSet<Fact> {
    let url = migrated(Backend::Sqlite).await;
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let mut facts = BTreeSet::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    for table in tables {
        let columns = sqlx::query(&format!("PRAGMA table_info(\"{table}\")"))
            .fetch_all(&mut conn)
            .await
            .expect("table_info");
        let mut primary: Vec<(i64, String)> = Vec::new();
        for row in columns {
            let (column, not_null, pk): (String, bool, i64) =
                (row.get("name"), row.get("notnull"), row.get("pk"));
            // A primary key column never holds NULL, whatever SQLite's flag says.
            let null = if not_null || pk > 0 {
                "not null"
            } else {
                "null"
            };
            facts.insert(format!("column {table}.{column} {null}"));
            if pk > 0 {
                primary.push((pk, column));
            }
        }
        primary.sort();
        if !primary.is_empty() {
            let names: Vec<String> = primary.into_iter().map(|(_, c)| c).collect();
            facts.insert(format!("primary key {table}({})", names.join(",")));
        }
        let indexes = sqlx::query(&format!("PRAGMA index_list(\"{table}\")"))
            .fetch_all(&mut conn)
            .await
            .expect("index_list");
        for row in indexes {
            let (name, unique, origin): (String, bool, String) =
                (row.get("name"), row.get("unique"), row.get("origin"));
            let keys = sqlx::query(&format!("PRAGMA index_xinfo(\"{name}\")"))
                .fetch_all(&mut conn)
                .await
                .expect("index_xinfo");
            let columns: Vec<String> = keys
                .into_iter()
                .filter(|k| k.get::<bool, _>("key"))
                .map(|k| key(k.get::<Option<String>, _>("name")))
                .collect();
            match origin.as_str() {
                "pk" => {}
                "u" => {
                    facts.insert(format!("unique {table}({})", columns.join(",")));
                }
                _ => {
                    let unique = if unique { "unique " } else { "" };
                    facts.insert(format!(
                        "{unique}index {name} on {table}({})",
                        columns.join(",")
                    ));
                }
            }
        }
    }
    facts
}

crate::on_both_backends!(the_seeded_channels_are_the_channel_kinds);

/// `ChannelKind` maps each kind to its seeded row without a query: the rows must agree. Each
/// says whether this server can send on it.
async fn the_seeded_channels_are_the_channel_kinds(backend: Backend) {
    let app = crate::helpers::TestApp::spawn(backend).await;
    let (status, _, channels) = app.list("/api/v1/channels").await;
    assert_eq!(status, 200);
    let rows: Vec<(i64, String)> = channels
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (
                c["id"].as_i64().unwrap_or(0),
                c["name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let kinds: Vec<(i64, String)> = switchboard::domain::ChannelKind::ALL
        .iter()
        .map(|k| (k.id(), k.as_str().to_owned()))
        .collect();
    assert_eq!(rows, kinds);
    let configured = |channels: &serde_json::Value| -> Vec<bool> {
        channels
            .as_array()
            .map(|all| all.iter().map(|c| c["configured"] == true).collect())
            .unwrap_or_default()
    };
    assert_eq!(configured(&channels), vec![false, false, false]);
    let sending = crate::helpers::TestApp::spawn_with(
        backend,
        &[
            ("WHATSAPP_ACCESS_TOKEN", "t"),
            ("WHATSAPP_PHONE_NUMBER_ID", "1"),
        ],
    )
    .await;
    let (_, _, channels) = sending.list("/api/v1/channels").await;
    assert_eq!(configured(&channels), vec![true, false, false]);
}
