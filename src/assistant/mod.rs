//! The LLM assistant: an OpenAI-compatible client, and the orchestrator that turns an inbound
//! message into a stored, broadcast reply (or a polite fallback), respecting hand-off to humans.

pub mod llm;
pub mod orchestrator;

pub use orchestrator::{Assistant, GatewayInbound, GatewayReply};
