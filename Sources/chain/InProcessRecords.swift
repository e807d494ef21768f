#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import HTTPDecodeTool
import HTTPEncodeTool

/// http-decode's records, handled in this process instead of written to a pipe: each goes
/// through the chain's filters, then either onto the socket as HTTP (the chain ends with
/// http-encode) or to standard output as a record, for the processes after the chain.
struct InProcessRecords: DecodedRecords {
    /// The encoder's part when the chain ends with http-encode: what it does in a process
    /// of its own, one response at a time.
    struct Encoder {
        var writer = ResponseWriter()
        var observer: ResponseObserver
    }

    let handle: (inout Record) throws -> Void
    var encoder: Encoder?
    let output: Int32 = 1
    private let loop = FilterLoop(seesResponses: true)
    private var out: [UInt8] = []
    private var record: [UInt8] = []

    init(handle: @escaping (inout Record) throws -> Void, encoder: Encoder?) {
        self.handle = handle
        self.encoder = encoder
    }

    mutating func take(_ lines: [UInt8]) -> Delivery {
        var delivery = Delivery.more
        lines.withUnsafeBufferPointer { all in
            var start = 0
            for i in 0..<all.count where all[i] == 0x0A {
                let line = UnsafeBufferPointer(rebasing: all[start..<i])
                start = i + 1
                delivery = encoder == nil ? pass(line) : answer(line)
                if delivery != .more { return }
            }
        }
        if encoder == nil && !out.isEmpty {
            if !FileOutput.writeAll(output, out) { delivery = .gone }
            out.removeAll(keepingCapacity: true)
        }
        return delivery
    }

    /// Through the filters, to the next process as a record (written once per batch).
    private mutating func pass(_ line: UnsafeBufferPointer<UInt8>) -> Delivery {
        loop.process(line, handle, into: &out)
        out.append(0x0A)
        return .more
    }

    /// Through the filters and onto the socket: one write per response, as http-encode.
    private mutating func answer(_ line: UnsafeBufferPointer<UInt8>) -> Delivery {
        // Moved out while it works, so that its buffers are never copied on write.
        var e = encoder!
        encoder = nil
        defer { encoder = e }
        out.removeAll(keepingCapacity: true)
        let close: Bool
        if var parsed = try? Record.parse(line) {
            // The decoder's records always parse: the record reaches the encoder as a
            // value, not written and read again.
            Log.about = parsed
            try? handle(&parsed)   // chained: each stage's error is already its answer
            Log.about = nil
            close = Self.encoding { e.writer.write(parsed, into: &out) }
        } else {
            record.removeAll(keepingCapacity: true)
            loop.process(line, handle, into: &record)
            close = Self.encoding { record.withUnsafeBufferPointer { e.writer.write(line: $0, into: &out) } }
        }
        guard FileOutput.writeAll(output, out) else { return .gone }
        // After the response is on its way: the log and the counters never delay it.
        if let written = e.writer.written {
            let bytes = out.count, status = e.writer.writtenStatus
            Self.encoding { e.observer.responded(written, status: status, bytesOut: bytes) }
        }
        if close {
            shutdown(output, Int32(SHUT_WR))
            return .closed
        }
        return .more
    }

    /// What the encoder logs is named http-encode, as from its own process.
    private static func encoding<T>(_ body: () -> T) -> T {
        let program = Log.program
        Log.program = "http-encode"
        defer { Log.program = program }
        return body()
    }

    /// The end of the requests: with the encoder here, the client sees the end of the
    /// responses now (half-close, as http-encode); else the next process sees the end.
    mutating func end() {
        if encoder != nil { shutdown(output, Int32(SHUT_WR)) } else { close(output) }
    }

    /// With the encoder here nothing is behind the chain to hang up; else the next process.
    var watched: Int32 { encoder == nil ? output : -1 }
}
