import Records
import VerifyJWTTool

FilterLoop.run(makeVerifyJWTStage(VerifyJWTOptions.table.parse()))
