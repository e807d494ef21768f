/// Why a connection, a read or a write failed: one line for a log or an error body,
/// never with secrets in it. Every client over this layer (key-set fetches, Redis, the
/// forwarding stage) reports through it, or wraps it in its own error type.
public struct NetError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
