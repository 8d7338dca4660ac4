//! `sqlx::migrate!` embeds the migration folders at compile time, but cargo does not know that
//! they are inputs: without this, a new migration file is missed until something else changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
