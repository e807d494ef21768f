import Records
import KV

/// Exit statuses scripts can test (docs/kv.md).
enum KVExit: Int32 {
    case ok = 0
    case notFound = 1
    case usage = 2
    case exists = 3
    case versionMismatch = 4
    case unavailable = 5
}

/// One `kv` invocation, parsed and validated before the store is touched.
enum KVCommand: Equatable {
    case get(key: String, entry: Bool)
    case put(key: String, value: JSON, metadata: JSON?, expiresAt: Int?)
    case create(key: String, value: JSON, metadata: JSON?, expiresAt: Int?)
    case cas(key: String, expected: Int?, value: JSON, metadata: JSON?, expiresAt: Int?)
    case delete(key: String)
    case list(prefix: String, limit: Int, cursor: String?)
    case serve(route: String, grace: Int)
}

struct UsageError: Error, Equatable {
    let message: String
    init(_ message: String) { self.message = message }
}

/// What a command printed and how it ended.
struct KVOutcome: Equatable {
    var status: KVExit
    var output: [UInt8] = []
    /// One line for stderr, when there is something to say.
    var message: String?
}

extension KVCommand {
    static let defaultListLimit = 1000

    /// Parses the command line. `option(name)` returns an option's value (nil when absent),
    /// `flag(name)` whether a flag is present; `positional` is what is left; `stdin` reads
    /// standard input (for a value given as `-`).
    static func parse(positional: [String], option: (String) -> String?, flag: (String) -> Bool,
                      stdin: () -> [UInt8], now: Int) throws(UsageError) -> KVCommand {
        guard let verb = positional.first else { throw UsageError("missing command (get, put, create, cas, delete, list, serve)") }
        let args = Array(positional.dropFirst())
        // Arrays, not Sets: a handful of names, and a Set<String> costs generic-metadata
        // and conformance look-ups at every start of `kv serve`.
        let given = ["--entry", "--ttl", "--expires-at", "--metadata", "--version", "--prefix", "--limit",
                     "--cursor", "--route", "--grace"].filter { $0 == "--entry" ? flag($0) : option($0) != nil }
        func allow(_ names: [String]) throws(UsageError) {
            if let bad = given.filter({ !names.contains($0) }).min() { throw UsageError("\(bad) does not apply to \(verb)") }
        }
        func arity(_ names: String...) throws(UsageError) {
            guard args.count == names.count else {
                throw UsageError("\(verb) takes \(names.joined(separator: " ")) (\(args.count) argument\(args.count == 1 ? "" : "s") given)")
            }
        }
        func write() throws(UsageError) -> (String, JSON, JSON?, Int?) {
            try arity("KEY", "VALUE")
            return (args[0], try value(args[1], stdin: stdin), try metadata(option("--metadata")),
                    try expiry(ttl: option("--ttl"), at: option("--expires-at"), now: now))
        }
        switch verb {
        case "get":
            try allow(["--entry"]); try arity("KEY")
            return .get(key: args[0], entry: flag("--entry"))
        case "put":
            try allow(["--ttl", "--expires-at", "--metadata"])
            let (k, v, m, e) = try write()
            return .put(key: k, value: v, metadata: m, expiresAt: e)
        case "create":
            try allow(["--ttl", "--expires-at", "--metadata"])
            let (k, v, m, e) = try write()
            return .create(key: k, value: v, metadata: m, expiresAt: e)
        case "cas":
            try allow(["--ttl", "--expires-at", "--metadata", "--version"])
            guard let text = option("--version") else { throw UsageError("cas needs --version N (0: the key must be absent)") }
            guard let n = Int(text), n >= 0 else { throw UsageError("--version must be a whole number, got '\(text)'") }
            let (k, v, m, e) = try write()
            return .cas(key: k, expected: n == 0 ? nil : n, value: v, metadata: m, expiresAt: e)
        case "delete":
            try allow([]); try arity("KEY")
            return .delete(key: args[0])
        case "list":
            try allow(["--prefix", "--limit", "--cursor"]); try arity()
            let limit = try integer(option("--limit"), "--limit", default: defaultListLimit, range: 1...10_000)
            return .list(prefix: option("--prefix") ?? "", limit: limit, cursor: option("--cursor"))
        case "serve":
            try allow(["--route", "--grace"]); try arity()
            return .serve(route: option("--route") ?? "subscription",
                          grace: try integer(option("--grace"), "--grace", default: 0, range: 0...(1 << 40)))
        default:
            throw UsageError("unknown command '\(verb)' (get, put, create, cas, delete, list, serve)")
        }
    }

    static func value(_ text: String, stdin: () -> [UInt8]) throws(UsageError) -> JSON {
        let bytes = text == "-" ? stdin() : Array(text.utf8)
        do {
            return try JSONReader.parse(bytes)
        } catch {
            throw UsageError("value is not JSON: \(error) (quote strings: '\"text\"')")
        }
    }

    static func metadata(_ text: String?) throws(UsageError) -> JSON? {
        guard let text else { return nil }
        do {
            return try JSONReader.parse(text)
        } catch {
            throw UsageError("--metadata is not JSON: \(error)")
        }
    }

    static func expiry(ttl: String?, at: String?, now: Int) throws(UsageError) -> Int? {
        if ttl != nil && at != nil { throw UsageError("give --ttl or --expires-at, not both") }
        if let ttl {
            guard let s = Int(ttl), s > 0 else { throw UsageError("--ttl must be a positive number of seconds, got '\(ttl)'") }
            return now + s
        }
        if let at {
            guard let t = Int(at), t > 0 else { throw UsageError("--expires-at must be Unix seconds, got '\(at)'") }
            return t
        }
        return nil
    }

    static func integer(_ text: String?, _ name: String, default value: Int, range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let text else { return value }
        guard let n = Int(text), range.contains(n) else {
            throw UsageError("\(name) must be a whole number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return n
    }

    /// Runs a store command (everything but `serve`).
    func execute(_ store: any KVStore) -> KVOutcome {
        do throws(KVError) {
            switch self {
            case .get(let key, let entry):
                guard let found = try store.get(key) else { return KVOutcome(status: .notFound, message: "not found: \(key)") }
                return KVOutcome(status: .ok, output: line(entry ? found.json : found.value))
            case .put(let key, let value, let metadata, let expiresAt):
                return written(try store.put(key, value, metadata: metadata, expiresAt: expiresAt))
            case .create(let key, let value, let metadata, let expiresAt):
                return written(try store.create(key, value, metadata: metadata, expiresAt: expiresAt))
            case .cas(let key, let expected, let value, let metadata, let expiresAt):
                return written(try store.compareAndSwap(key, expected: expected, value, metadata: metadata, expiresAt: expiresAt))
            case .delete(let key):
                return try store.delete(key) ? KVOutcome(status: .ok) : KVOutcome(status: .notFound, message: "not found: \(key)")
            case .list(let prefix, let limit, let cursor):
                let page = try store.list(prefix: prefix, limit: limit, cursor: cursor)
                let body: JSON = ["keys": .array(page.keys.map { JSON.string($0) }), "cursor": page.cursor.map { JSON.string($0) } ?? JSON.null]
                return KVOutcome(status: .ok, output: line(body))
            case .serve:
                return KVOutcome(status: .usage, message: "serve is not a store command")
            }
        } catch {
            return Self.outcome(for: error)
        }
    }

    static func outcome(for error: KVError) -> KVOutcome {
        switch error {
        case .exists: return KVOutcome(status: .exists, message: error.description)
        case .versionMismatch: return KVOutcome(status: .versionMismatch, message: error.description)
        case .invalidKey, .invalidCursor: return KVOutcome(status: .usage, message: error.description)
        case .unavailable: return KVOutcome(status: .unavailable, message: error.description)
        }
    }

    private func written(_ entry: KVEntry) -> KVOutcome {
        let summary: JSON = ["key": .string(entry.key), "version": JSON(entry.version),
                             "expires_at": entry.expiresAt.map { JSON($0) } ?? JSON.null]
        return KVOutcome(status: .ok, output: line(summary))
    }

    private func line(_ value: JSON) -> [UInt8] {
        var out = value.serialized()
        out.append(0x0A)
        return out
    }
}
