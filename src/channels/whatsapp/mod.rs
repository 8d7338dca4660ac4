//! WhatsApp Cloud API: the send client, webhook signatures and webhook bodies. The parsing is pure
//! (no HTTP, no database); the webhook route calls `signature::verify` on the raw bytes, then
//! `webhook::parse`.

pub mod cloud_api;
pub mod signature;
pub mod webhook;
