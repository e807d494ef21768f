import Records
import KVTool

runKV(KVOptions.table.parse())
