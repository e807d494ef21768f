import Records
import HTTPEncodeTool

HTTPEncodeFilter(observer: makeResponseObserver(HTTPEncodeOptions.table.parse())).run()
