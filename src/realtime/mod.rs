//! Live updates to the agents' browsers: the broadcast hub, one loop per WebSocket, and the
//! relay that carries committed changes between instances.

pub mod events;
pub mod frame;
pub mod hub;
pub mod payload;
pub mod relay;
pub mod socket;

pub use events::Event;
pub use hub::Hub;
pub use relay::{Relay, RelayState};

/// Re-exported for the hub, which publishes committed changes.
pub(crate) use crate::domain::Change;
