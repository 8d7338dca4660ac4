//! Providers, one folder each.

pub mod whatsapp;
