#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The loop every filter runs: one line in, exactly one line out, in order, flushed
/// before the loop waits for more input (so an answer never waits on a request that has
/// not arrived; lines that arrived together share one write).
///
/// A new filter is a function from record to record:
///
///     FilterLoop.run { record in
///         if record.path == "/teapot" { record = record.errorResponse(status: 418, ...) }
///     }
///
/// Responses pass through untouched (byte for byte) unless `seesResponses` is set;
/// malformed lines become 400 responses; a thrown `FilterError` becomes its JSON
/// error response; any other error becomes a 500. Nothing kills the loop but the end
/// of input (exit 0) or a closed output (exit 1), which is noticed while waiting for
/// input, so the death of a later stage ends the whole pipeline at once.
public struct FilterLoop {
    public var seesResponses = false
    public var input: Int32 = 0
    public var output: Int32 = 1

    public init(seesResponses: Bool = false) { self.seesResponses = seesResponses }

    /// Output waiting for lines that arrived together is written at this size at the latest.
    static let flushBytes = 1 << 16

    public static func run(seesResponses: Bool = false, _ handle: (inout Record) throws -> Void) -> Never {
        FilterLoop(seesResponses: seesResponses).run(handle)
    }

    /// Runs one filter, built as a `Stage`, as a process of its own.
    public static func run(_ stage: Stage) -> Never {
        FilterLoop(seesResponses: stage.seesResponses).run(stage.handle)
    }

    /// Runs several filters in this one process (`chain`): each record goes through the
    /// stages in order, as it would through a pipeline of them, and is parsed and written
    /// once instead of once per stage. Each stage keeps its own rules: a response it does
    /// not see passes it untouched, and its thrown error answers the record as it reached
    /// that stage.
    public static func run(stages: [Stage]) -> Never {
        FilterLoop(seesResponses: true).run(chained(stages))
    }

    /// The stages as one handler, for a loop that sees responses.
    public static func chained(_ stages: [Stage]) -> (inout Record) throws -> Void {
        let own = Log.program   // names what no stage wrote: a malformed line
        return { record in
            defer { Log.program = own }
            for stage in stages {
                if record.isResponse && !stage.seesResponses { continue }
                Log.program = stage.program
                let reached = record
                do {
                    try stage.handle(&record)
                } catch let e as FilterError {
                    record = reached.errorResponse(status: e.status, error: e.code, message: e.message, headers: e.headers)
                } catch {
                    Log.error("internal error: \(error)")
                    record = reached.errorResponse(status: 500, error: "internal_error", message: "the filter failed on this record")
                }
            }
        }
    }

    public func run(_ handle: (inout Record) throws -> Void) -> Never {
        signal(SIGPIPE, SIG_IGN)
        var reader = LineReader(fd: input)
        reader.watchedOutput = output
        var out = JSONOutput(capacity: Self.flushBytes + 4096)
        var closed = false
        reader.forEachLineWithLookahead { event, more in
            if closed { return }
            switch event {
            case .line(let line):
                process(line, handle, into: &out)
            case .tooLong(let prefix):
                Log.error("record longer than \(LineReader.defaultMaxLine) bytes")
                Self.malformed(prefix, reason: "record too long", into: &out)
            }
            out.append(0x0A)
            // Flushed before the loop can wait for input, so no answer ever waits on a
            // request that has not arrived (keep-alive: one line, one write); lines that
            // arrived together (pipelining, batch files) share a write.
            if !more || out.count >= Self.flushBytes {
                if !out.withBytes({ FileOutput.writeAll(output, UnsafeRawBufferPointer($0)) }) { closed = true }
                out.removeAll()
            }
        }
        exit(closed || reader.outputGone ? 1 : 0)
    }

    /// Turns one input line into one output line (without the newline).
    public func process(_ line: UnsafeBufferPointer<UInt8>, _ handle: (inout Record) throws -> Void,
                        into out: inout [UInt8]) {
        var o = JSONOutput(capacity: line.count + 256)
        process(line, handle, into: &o)
        o.withBytes { out.append(contentsOf: $0) }
    }

    func process(_ line: UnsafeBufferPointer<UInt8>, _ handle: (inout Record) throws -> Void,
                 into out: inout JSONOutput) {
        var record: Record
        do {
            record = try Record.parse(line)
        } catch {
            Log.error("malformed record: \(error)")
            Self.malformed(line, reason: "malformed record: \(error.message)", into: &out)
            return
        }
        if record.isResponse && !seesResponses {
            out.append(line)
            return
        }
        let original = record
        Log.about = original
        defer { Log.about = nil }
        do {
            try handle(&record)
        } catch let e as FilterError {
            record = original.errorResponse(status: e.status, error: e.code, message: e.message, headers: e.headers)
        } catch {
            Log.error("internal error: \(error)")
            record = original.errorResponse(status: 500, error: "internal_error", message: "the filter failed on this record")
        }
        if record.object.isUnchanged(since: original.object) {
            out.append(line)   // untouched: pass the exact bytes on
        } else {
            record.object.write(into: &out)
        }
    }

    /// The 400 response for a line that is not a record, with its id when one can be found.
    public static func malformed(_ line: UnsafeBufferPointer<UInt8>, reason: String, into out: inout [UInt8]) {
        var o = JSONOutput(capacity: 256)
        malformed(line, reason: reason, into: &o)
        o.withBytes { out.append(contentsOf: $0) }
    }

    static func malformed(_ line: UnsafeBufferPointer<UInt8>, reason: String, into out: inout JSONOutput) {
        var request = JSONObject()
        if let id = recoverID(line) { request["id"] = .string(id) }
        request["keep_alive"] = .bool(false)
        let response = Record(request).errorResponse(status: 400, error: "bad_record", message: reason)
        response.object.write(into: &out)
    }

    /// Finds `"id":"..."` in a line that did not parse, so the error can still be matched
    /// to its request. Only simple ids (no escapes) are recovered.
    static func recoverID(_ line: UnsafeBufferPointer<UInt8>) -> String? {
        let needle = Array("\"id\"".utf8)
        guard line.count > needle.count else { return nil }
        var i = 0
        while i + needle.count <= line.count {
            if line[i] == needle[0] && Array(line[i..<i + needle.count]) == needle {
                var j = i + needle.count
                while j < line.count && (line[j] == 0x20 || line[j] == 0x09) { j += 1 }
                guard j < line.count, line[j] == UInt8(ascii: ":") else { i += 1; continue }
                j += 1
                while j < line.count && (line[j] == 0x20 || line[j] == 0x09) { j += 1 }
                guard j < line.count, line[j] == UInt8(ascii: "\"") else { return nil }
                let start = j + 1
                var k = start
                while k < line.count && line[k] != UInt8(ascii: "\"") && line[k] != UInt8(ascii: "\\") && line[k] >= 0x20 { k += 1 }
                guard k < line.count, line[k] == UInt8(ascii: "\""), k - start <= 128 else { return nil }
                return String(validating: UnsafeBufferPointer(rebasing: line[start..<k]), as: UTF8.self)
            }
            i += 1
        }
        return nil
    }
}

/// One filter as a function from record to record, built from its command line by the
/// library that holds the tool's logic, so that the tool's own `main` and `chain` run the
/// same code: `FilterLoop.run(stage)` alone, or `FilterLoop.run(stages:)` several in one
/// process.
public struct Stage {
    /// The tool's name, which prefixes its log lines.
    public let program: String
    /// Whether responses made before this stage reach `handle` (audit) or pass it by.
    public let seesResponses: Bool
    public let handle: (inout Record) throws -> Void

    public init(program: String, seesResponses: Bool = false, _ handle: @escaping (inout Record) throws -> Void) {
        self.program = program
        self.seesResponses = seesResponses
        self.handle = handle
    }
}

extension JSONObject {
    /// Whether a handler left this object as it was read (`earlier` is the copy taken
    /// before it ran). Unlike `==`, a member read raw and since assigned counts as changed
    /// without parsing its old bytes to compare (a header list with a 1 KB token costs
    /// about 10 k instructions to parse): writing it again gives the same bytes anyway,
    /// since raw bytes are what the writer produces.
    func isUnchanged(since earlier: JSONObject) -> Bool {
        guard members.count == earlier.members.count else { return false }
        // Not written to at all: both still share one array (a pass-through record).
        if members.withUnsafeBufferPointer({ a in earlier.members.withUnsafeBufferPointer { a.baseAddress == $0.baseAddress } }) {
            return true
        }
        for i in members.indices {
            let now = members[i], then = earlier.members[i]
            switch (now.storage, then.storage) {
            case (.raw(let a), .raw(let b)): if !a.hasSameBytes(as: b) { return false }
            case (.value(let a), .value(let b)): if a != b { return false }
            default: return false
            }
            if now.key != then.key { return false }
        }
        return true
    }
}
