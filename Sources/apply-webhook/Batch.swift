#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// Batch mode: replays and migrations. Every input item goes through the same
/// WebhookProcessor as a live delivery.
///
/// Inputs: files of one JSON item per line, or holding one JSON document over many lines
/// (a pretty-printed event or list export), stdin when no path is given; and
/// directories, whose regular files (not starting with '.', in byte order of their
/// names) each hold one JSON item, pretty-printed or not. An item is
///   - a delivery: {"headers": {"Stripe-Signature": "..."}, "body": "<exact body>"}
///     (or "body_base64"; headers may also be [[name, value], ...] as in records),
///   - a raw event: {"id": "evt_...", "object": "event", ...} (or a thin event), or
///   - Stripe's list export {"object": "list", "data": [events]},
/// raw events being accepted only with --no-verify-signatures (a trusted export:
/// nothing to verify it with). Anything else is an invalid item named by its shape.
///
/// Grouped durability (`--group N`): the events of a group are applied one after the other
/// as always (each sees the writes of those before it), but their writes are staged and
/// made durable together at the end of the group (KVWriteGroup); only then are the group's
/// items counted and reported. A store failure drops the whole group, a crash leaves each
/// key old or new: either way a re-run converges, as after a crash in per-event mode.
struct Batch {
    var processor: WebhookProcessor
    var verify: Bool
    var showProgress: Bool
    /// Items per group of durable writes; 1 writes each event durably on its own.
    var groupSize = 1
    static let defaultGroupSize = 64

    /// Items processed whose writes are not durable yet, with what to log about them.
    private var held: [(outcome: Outcome, note: String?)] = []
    private var groupStart = ""

    var counts: [Outcome.Kind: Int] = [:]
    var total = 0
    /// Pending events (of this run or an earlier one) applied because an item of this
    /// run brought their customer's user. Items are counted by their own outcome.
    var drained = 0
    private var progressLine: Progress?

    init(processor: WebhookProcessor, verify: Bool, showProgress: Bool, groupSize: Int = 1) {
        self.processor = processor; self.verify = verify; self.showProgress = showProgress
        self.groupSize = max(1, groupSize)
    }

    enum Stop: Error { case storeFailed(String) }

    /// Runs every input; returns the exit status (0, 1 when any item was invalid, 3 when
    /// the store failed and the run stopped early).
    mutating func run(paths: [String]) -> Int32 {
        if showProgress { progressLine = Progress(total: Progress.count(paths)) }
        do {
            if paths.isEmpty {
                try lines(fd: 0, name: "stdin")
            } else {
                for path in paths { try input(path) }
            }
            try flush()
        } catch Stop.storeFailed(let why) {
            finishProgress()
            Log.error("stopped: \(why); re-run the batch to resume")
            summary()
            return 3
        } catch {
            Log.fatal("\(error)", status: 3)
        }
        finishProgress()
        summary()
        return (counts[.invalid] ?? 0) > 0 ? 1 : 0
    }

    private mutating func input(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            try report(invalidItem("\(path): cannot open: \(errnoText(errno))"), at: path)
            return
        }
        if st.st_mode & S_IFMT == S_IFDIR {
            // A directory is read whole: nothing waits between its files.
            for name in Self.entries(path) {
                let file = path.hasSuffix("/") ? path + name : path + "/" + name
                var fst = stat()
                guard stat(file, &fst) == 0, fst.st_mode & S_IFMT == S_IFREG else { continue }
                guard let bytes = readFile(file) else {
                    try report(invalidItem("\(file): cannot read"), at: file)
                    continue
                }
                try item(bytes, at: file)
            }
        } else {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                try report(invalidItem("\(path): cannot open: \(errnoText(errno))"), at: path)
                return
            }
            defer { close(fd) }
            try lines(fd: fd, name: path)
        }
    }

    /// A multi-line document is held whole up to this size (as a directory's file is).
    static let maxDocument = 64 << 20

    private mutating func lines(fd: Int32, name: String) throws {
        var reader = LineReader(fd: fd)
        var number = 0
        var failure: Error?
        // A first line that is not JSON on its own (`{` of a pretty-printed event) starts a
        // document: the input is then one JSON value over all its lines. Should the whole
        // not parse either, its lines are taken one by one after all, as items.
        var sawItem = false
        var document: [[UInt8]]?
        var documentBytes = 0
        var oversized = false
        // A pipe may pause for a long time: a group must not wait for it holding its locks
        // and keeping its events unreported. A regular file never pauses.
        var st = stat()
        let mayPause = fstat(fd, &st) != 0 || st.st_mode & S_IFMT != S_IFREG
        reader.forEachLineWithLookahead { event, more in
            guard failure == nil else { return }
            number += 1
            do {
                switch event {
                case .line(let line):
                    if oversized { return }
                    if document != nil {
                        document!.append(Array(line)); documentBytes += line.count + 1
                        if documentBytes > Self.maxDocument {
                            // One error for the whole input, not one per remaining line.
                            document = nil; oversized = true
                            try report(invalidItem("\(name): a JSON document longer than \(Self.maxDocument) bytes"), at: name)
                        }
                        return
                    }
                    if !line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                        let bytes = Array(line)
                        if !sawItem, (try? JSONReader.parse(bytes)) == nil {
                            document = [bytes]; documentBytes = bytes.count + 1
                            return
                        }
                        sawItem = true
                        try item(bytes, at: "\(name):\(number)")
                    }
                case .tooLong:
                    try report(invalidItem("\(name):\(number): line longer than \(LineReader.defaultMaxLine) bytes"),
                               at: "\(name):\(number)")
                }
                if mayPause && !more { try flush() }
            } catch { failure = error }
        }
        if let failure { throw failure }
        if let document {
            var whole: [UInt8] = []
            whole.reserveCapacity(documentBytes)
            for l in document { whole += l; whole.append(0x0A) }
            if let value = try? JSONReader.parse(whole) {
                try item(value, at: name)
            } else {
                for (i, l) in document.enumerated() where !l.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                    try item(l, at: "\(name):\(i + 1)")
                }
            }
            try flush()
        }
    }

    private mutating func item(_ bytes: [UInt8], at place: String) throws {
        let value: JSON
        do { value = try JSONReader.parse(bytes) } catch {
            try report(invalidItem("\(place): not JSON: \(error)"), at: place)
            return
        }
        try item(value, at: place)
    }

    private mutating func item(_ value: JSON, at place: String) throws {
        guard let o = value.object else {
            try report(invalidItem("\(place): \(Self.shape(value))\(Self.expected)"), at: place)
            return
        }
        if o["object"]?.string == "list" {
            guard let data = o["data"]?.array else {
                try report(invalidItem("\(place): a list without a data array\(Self.expected)"), at: place)
                return
            }
            // Stripe lists newest first; the stored state does not depend on the order.
            for (i, element) in data.enumerated() {
                if element.object?["object"]?.string == "list" {
                    try report(invalidItem("\(place)[\(i)]: a list inside a list\(Self.expected)"), at: "\(place)[\(i)]")
                } else {
                    try item(element, at: "\(place)[\(i)]")
                }
            }
            return
        }
        let response: WebhookProcessor.Response
        if o["object"]?.string != "event", o["body"] != nil || o["body_base64"] != nil {
            guard let body = Self.body(o) else {
                try report(invalidItem("\(place): delivery body is not a string (or valid base64)"), at: place)
                return
            }
            response = processor.process(body: body, signature: Self.signature(o["headers"]), verify: verify)
        } else if !Self.isEvent(o) {
            try report(invalidItem("\(place): \(Self.shape(value))\(Self.expected)"), at: place)
            return
        } else if verify {
            try report(invalidItem("\(place): an unsigned event; pass --no-verify-signatures for a trusted export"), at: place)
            return
        } else {
            response = processor.apply(json: value)
        }
        let outcome = response.outcome
        if outcome.kind == .error {
            let unreported = held.count
            abandonGroup()
            throw Stop.storeFailed("\(place): \(outcome.reason ?? "store error"); nothing from "
                + (unreported > 0 ? "\(groupStart) (the start of its group)" : "this event") + " on was applied")
        }
        let note: String?
        switch outcome.kind {
        case .invalid: note = "\(place): invalid: \(outcome.reason ?? "")"
        case .rejected: note = "\(place): rejected: \(outcome.reason ?? "")"
        default: note = nil
        }
        try report(outcome, note: note, at: place)
    }

    private func invalidItem(_ message: String) -> (Outcome, String) {
        var o = Outcome(kind: .invalid)
        o.reason = message
        return (o, message)
    }

    private mutating func report(_ invalid: (Outcome, String), at place: String) throws {
        try report(invalid.0, note: invalid.1, at: place)
    }

    // MARK: Groups

    /// Counts and logs an item once its writes are durable: now, or at the end of its group.
    private mutating func report(_ o: Outcome, note: String?, at place: String) throws {
        if held.isEmpty { groupStart = place }
        held.append((o, note))
        if held.count >= groupSize { try flush() }
    }

    /// Makes the held items' writes durable, then reports them.
    private mutating func flush() throws {
        guard !held.isEmpty else { return }
        if let group = processor.store.group {
            do { try group.commit() } catch {
                let unreported = held.count
                abandonGroup()
                throw Stop.storeFailed("\(groupStart): the group of \(unreported) items from here failed to commit: "
                    + "\(error); some of its events may be applied, none is counted")
            }
        }
        for (o, note) in held {
            if let note { Log.error(note) }
            count(o)
        }
        held = []
    }

    private mutating func abandonGroup() {
        processor.store.group?.abandon()
        held = []
    }

    private mutating func count(_ o: Outcome) {
        total += 1
        counts[o.kind, default: 0] += 1
        drained += o.drained.count
        progress()
    }

    // MARK: Output

    private mutating func progress() {
        guard progressLine?.due() == true else { return }
        let detail = describe()
        progressLine!.update(done: total, detail: detail)
    }

    private func finishProgress() {
        progressLine?.finish()
    }

    private func describe() -> String {
        Outcome.Kind.allCases.filter { $0 != .error }.map { "\(counts[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", ")
    }

    /// A JSON line on stdout for scripts, a sentence on stderr for people.
    private func summary() {
        var o = JSONObject()
        o["events"] = JSON(total)
        for kind in Outcome.Kind.allCases where kind != .error { o[kind.rawValue] = JSON(counts[kind] ?? 0) }
        o["drained"] = JSON(drained)
        var line = JSON.object(o).serialized()
        line.append(0x0A)
        FileOutput.writeAll(1, line)
        Log.error("\(total) events: \(describe()); \(drained) pending events drained")
    }

    // MARK: Shapes

    static let expected = ", not an event, a delivery {\"headers\",\"body\"} or a list export {\"object\":\"list\",\"data\":[...]}"

    /// A snapshot event, a thin or v2 event (`v2.core.event`), or an event without its
    /// `object` member (some fixtures leave it out).
    static func isEvent(_ o: JSONObject) -> Bool {
        if let kind = o["object"]?.string { return kind == "event" || kind.hasSuffix(".event") }
        return o["id"]?.string != nil && o["type"]?.string != nil
    }

    /// What a JSON value is, for an error message.
    static func shape(_ v: JSON) -> String {
        switch v {
        case .null: return "JSON null"
        case .bool: return "a JSON boolean"
        case .number: return "a JSON number"
        case .string: return "a JSON string"
        case .array(let a): return "a JSON array of \(a.count) items"
        case .object(let o):
            if let kind = o["object"]?.string { return "a JSON object of type \"\(kind)\"" }
            let keys = o.members.prefix(4).map { "\"\($0.key)\"" }.joined(separator: ", ")
            return "a JSON object with no \"object\" member (keys \(keys)\(o.members.count > 4 ? ", ..." : ""))"
        }
    }

    // MARK: Delivery files

    static func body(_ o: JSONObject) -> [UInt8]? {
        if let s = o["body"]?.string { return Array(s.utf8) }
        if let b = o["body_base64"]?.string { return Base64.decode(b) }
        return nil
    }

    /// The Stripe-Signature header, whatever the case of its name.
    static func signature(_ headers: JSON?) -> String? {
        if let o = headers?.object {
            for m in o.members where m.key.lowercased() == "stripe-signature" { return m.value.string }
        }
        for pair in headers?.array ?? [] {
            if let p = pair.array, p.count == 2, p[0].string?.lowercased() == "stripe-signature" { return p[1].string }
        }
        return nil
    }

    /// Names in a directory, in byte order, without hidden files.
    static func entries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name.first == UInt8(ascii: ".") { continue }
            names.append(name)
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return names.map { String(decoding: $0, as: UTF8.self) }
    }
}
