#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records

/// `tee FILE` inside a chain: appends each record, as it reaches that point, to FILE, and
/// passes it on unchanged, as `| tee -a FILE |` between two processes would. In a chain
/// there is no pipe to put tee on, so this is how to see what a filter receives.
func makeTeeStage(_ arguments: [String]) -> Stage {
    guard arguments.count == 1, let path = arguments.first, !path.hasPrefix("-") else {
        Log.fatal("tee takes one argument, the file to append the records to")
    }
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    if fd < 0 { Log.fatal("tee: \(path): \(String(cString: strerror(errno)))") }
    return Stage(program: "tee", seesResponses: true) { record in
        var line: [UInt8] = []
        record.object.write(to: &line)
        line.append(0x0A)
        // One write per record, as tee's: a reader never sees half a line.
        if !FileOutput.writeAll(fd, line) {
            Log.error("tee: \(path): \(String(cString: strerror(errno)))")
        }
    }
}
