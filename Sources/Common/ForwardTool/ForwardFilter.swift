#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import Net

/// Sends the requests of forwarded routes to their upstreams and turns the answers into
/// response records. One per process: a pipeline serves one request at a time, so one idle
/// connection per upstream address is the whole pool, and it lives as long as the process
/// (behind pipelines/front, for many clients' requests).
final class ForwardFilter {
    let table: UpstreamTable
    let rewrite: UpstreamRequest
    /// How long an address that refused or timed out a connect is tried last.
    static let downMillis = 5_000

    /// What this process remembers of one upstream: whose turn it is, and per address its
    /// idle connection and until when a failed connect puts it last. Found by the route
    /// name once per request.
    final class State {
        var turn: Int
        var idle: [UpstreamConnection?]
        var downUntil: [Int]
        init(turn: Int, addresses: Int) {
            self.turn = turn
            idle = Array(repeating: nil, count: addresses)
            downUntil = Array(repeating: 0, count: addresses)
        }
    }
    private var states: [String: State] = [:]
    private let start: Int

    init(table: UpstreamTable, trustForwardedProto: Bool, seed: Int = Int(getpid())) {
        self.table = table
        rewrite = UpstreamRequest(trustForwardedProto: trustForwardedProto)
        // Each process starts at a different address, so pipelines spread over them.
        start = seed
    }

    static let idempotent: Set<String> = ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]

    func handle(_ record: inout Record) throws {
        guard !table.isEmpty,
              let name = record.routeName,
              let upstream = table.upstream(named: name) else { return }
        if record.header("upgrade") != nil {
            throw FilterError(status: 501, code: "upgrade_not_supported",
                              message: "records carry whole bodies: WebSocket and other upgrades must be routed around the gateway (docs/forward.md)")
        }
        record = forward(record, to: upstream)
    }

    func state(_ upstream: Upstream) -> State {
        if let s = states[upstream.name] { return s }
        let s = State(turn: start, addresses: upstream.endpoints.count)
        states[upstream.name] = s
        return s
    }

    /// The addresses in the order to try: this request's turn first, then the others;
    /// addresses that failed recently after all the rest.
    func order(_ upstream: Upstream, _ state: State, now: Int) -> [Int] {
        let n = upstream.endpoints.count
        let t = state.turn
        state.turn = t &+ 1
        if n == 1 { return [0] }
        let rotated = (0..<n).map { (($0 + t) % n + n) % n }
        let up = rotated.filter { state.downUntil[$0] <= now }
        return up + rotated.filter { !up.contains($0) }
    }

    func forward(_ request: Record, to upstream: Upstream) -> Record {
        let began = Clock.monotonicMillis()
        let deadline = began + upstream.timeoutMillis
        let method = request.method
        var limits = ResponseLimits()
        limits.maxBody = upstream.maxResponse
        var failure = UpstreamError(.unavailable, "no address")
        var failedAt = upstream.endpoints[0]
        var sawTimeout = false
        let state = state(upstream)
        for i in order(upstream, state, now: began) {
            let endpoint = upstream.endpoints[i]
            failedAt = endpoint
            let bytes: [UInt8]
            do { bytes = try rewrite.build(request, for: upstream, at: endpoint) } catch {
                return request.errorResponse(status: error.status, error: error.code, message: error.message)
            }
            var connection = state.idle[i]
            state.idle[i] = nil
            if let c = connection, c.isStale { connection = nil }
            let reused = connection != nil
            do throws(UpstreamError) {
                let c: UpstreamConnection
                if let connection { c = connection } else { c = try connect(upstream, i, of: state, deadline: deadline) }
                do {
                    return finish(request, try c.exchange(bytes, headRequest: method == "HEAD", limits: limits, deadline: deadline),
                                  on: c, address: i, of: state, upstream: upstream, began: began)
                } catch let e where reused && e.beforeResponse && e.kind == .unavailable && Self.idempotent.contains(method) {
                    // The upstream closed the kept-alive connection as the request went out:
                    // nothing was answered, and the method may be repeated. Once, fresh.
                    let fresh = try connect(upstream, i, of: state, deadline: deadline)
                    return finish(request, try fresh.exchange(bytes, headRequest: method == "HEAD", limits: limits, deadline: deadline),
                                  on: fresh, address: i, of: state, upstream: upstream, began: began)
                }
            } catch {
                let e = error
                failure = e
                Log.error("\(upstream.name) \(endpoint): \(e.message)")
                if e.kind == .timeout { sawTimeout = true }
                // Only a failed connect moves on to the next address: a request that went out
                // may have reached the upstream, and is not sent twice.
                if e.isConnectFailure { continue }
                break
            }
        }
        if failure.isConnectFailure && sawTimeout { failure = UpstreamError(.timeout, failure.message) }
        return errorRecord(request, failure, upstream: upstream, endpoint: failedAt, began: began)
    }

    private func connect(_ upstream: Upstream, _ i: Int, of state: State, deadline: Int) throws(UpstreamError) -> UpstreamConnection {
        let now = Clock.monotonicMillis()
        do {
            return try UpstreamConnection.open(upstream.endpoints[i], caFile: upstream.caFile,
                                               deadline: min(deadline, now + upstream.connectTimeoutMillis))
        } catch {
            state.downUntil[i] = Clock.monotonicMillis() + Self.downMillis
            throw error
        }
    }

    private func finish(_ request: Record, _ response: ParsedResponse, on c: UpstreamConnection, address i: Int,
                        of state: State, upstream: Upstream, began: Int) -> Record {
        state.downUntil[i] = 0
        if response.reusable { state.idle[i] = c }
        return ResponseRecord.make(request, response, upstream: upstream, endpoint: c.endpoint,
                                   millis: Clock.monotonicMillis() - began)
    }

    func errorRecord(_ request: Record, _ e: UpstreamError, upstream: Upstream, endpoint: UpstreamEndpoint, began: Int) -> Record {
        let (status, code, message): (Int, String, String)
        switch e.kind {
        case .unavailable: (status, code, message) = (502, "upstream_unavailable", "the upstream \(upstream.name) could not be reached")
        case .timeout: (status, code, message) = (504, "upstream_timeout", "the upstream \(upstream.name) did not answer in time")
        case .badResponse: (status, code, message) = (502, "bad_upstream_response", "the upstream \(upstream.name) sent a malformed response")
        case .tooLarge: (status, code, message) = (502, "upstream_response_too_large", "the upstream \(upstream.name) sent more than \(upstream.maxResponse) bytes")
        }
        var record = request.errorResponse(status: status, error: code, message: message)
        record.setAnnotation("upstream", .object(JSONObject([
            ("name", .string(upstream.name)), ("address", .string(endpoint.description)),
            ("ms", JSON(Clock.monotonicMillis() - began)),
        ])))
        return record
    }
}
