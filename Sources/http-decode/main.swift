#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Records
import HTTPDecodeTool

let options = HTTPDecodeOptions.table.parse()
if options.flag("--incoming-cpu") {
    guard let cpu = IncomingCPU.of() else { Log.fatal("--incoming-cpu: standard input is not a socket that saw packets", status: 1) }
    print(cpu)
    exit(0)
}
let settings = makeDecoderSettings(options)
if options.flag("--check") { exit(0) }
var records = RecordPipe(fd: 1)
exit(runHTTPDecode(settings, into: &records))
