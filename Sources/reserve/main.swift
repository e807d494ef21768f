import Records

var options = Options(program: "reserve", usage: Usage.text)
let filter = ReserveFilter.configured(&options)
FilterLoop.run { filter.handle(&$0) }
