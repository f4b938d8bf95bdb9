import Foundation
import Logging
import NIOCore
import PostgresNIO

/// A finished picture (or any blob) under its content address.
public struct StoredResult: Sendable, Equatable {
    public var key: String
    public var contentType: String
    /// Opaque JSON describing the result (layer, filter, loss, ...).
    public var metadataJSON: String
    public var bytes: ByteBuffer
    /// Set when read back; ignored when storing.
    public var createdAt: Date?

    public init(key: String, contentType: String, metadataJSON: String = "{}", bytes: ByteBuffer, createdAt: Date? = nil) {
        self.key = key
        self.contentType = contentType
        self.metadataJSON = metadataJSON
        self.bytes = bytes
        self.createdAt = createdAt
    }
}

/// The `results` table: write-once blobs by key, shared by the whole cluster.
/// Get it from `PostgresJobStore.results` (it uses the job store's pool).
public final class PostgresResultStore: Sendable {
    let client: PostgresClient
    let configuration: JobStoreConfiguration
    let logger: Logger

    init(client: PostgresClient, configuration: JobStoreConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Stores `result` unless its key is present. Returns false when it was:
    /// keys are content addresses, so the stored bytes are the same.
    @discardableResult
    public func put(_ result: StoredResult) async throws -> Bool {
        let metadata = result.metadataJSON
        return try await !query(
            "put result",
            """
            INSERT INTO results (key, content_type, metadata, bytes)
            VALUES (\(result.key), \(result.contentType), \(metadata)::jsonb, \(result.bytes))
            ON CONFLICT (key) DO NOTHING
            RETURNING key
            """
        ).isEmpty
    }

    public func get(key: String) async throws -> StoredResult? {
        guard
            let row = try await query(
                "get result",
                """
                SELECT key, content_type, metadata::text, bytes, created_at FROM results WHERE key = \(key)
                """
            ).first
        else { return nil }
        let (key, contentType, metadata, bytes, createdAt) = try row.decode((String, String, String, ByteBuffer, Date).self)
        return StoredResult(key: key, contentType: contentType, metadataJSON: metadata, bytes: bytes, createdAt: createdAt)
    }

    /// Whether a result exists, without transferring its bytes.
    public func contains(key: String) async throws -> Bool {
        try await !query("has result", "SELECT 1 FROM results WHERE key = \(key)").isEmpty
    }

    private func query(_ what: String, _ query: PostgresQuery) async throws -> [PostgresRow] {
        let client = self.client
        let logger = self.logger
        return try await withDeadline(configuration.operationTimeout, what) {
            try await client.query(query, logger: logger).collect()
        }
    }
}
