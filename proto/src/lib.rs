//! Weir's wire contracts, generated from the versioned packages in `proto/`:
//!
//! - [`admin::v1`]: clients ↔ coordinator, everything the REST API can do;
//! - [`control::v1`]: runner ↔ coordinator (join, assignments, status);
//! - [`connector::v2`]: runner ↔ connector sidecar: per-task streams, credits,
//!   typed errors, version negotiation.

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("weir.admin.v1");
    }
}

pub mod control {
    pub mod v1 {
        tonic::include_proto!("weir.control.v1");

        /// Control-protocol version this build speaks. Version 2: runners
        /// host connector instances and report the task configs they make.
        pub const PROTOCOL_VERSION: u32 = 2;
    }
}

pub mod connector {
    pub mod v2 {
        tonic::include_proto!("weir.connector.v2");

        /// Connector-protocol version this build speaks.
        pub const PROTOCOL_VERSION: u32 = 2;
    }
}
