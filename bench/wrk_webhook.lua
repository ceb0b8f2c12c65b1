-- wrk script: POST pre-signed Facebook webhook bodies, one per request, in turn.
-- The file named by MHCHAT_BENCH_REQUESTS holds one "signature<TAB>body" line per request.
local sigs, bodies = {}, {}
for line in io.lines(os.getenv("MHCHAT_BENCH_REQUESTS")) do
  local sig, body = line:match("^(%S+)\t(.*)$")
  sigs[#sigs + 1] = sig
  bodies[#bodies + 1] = body
end
local i = 0

request = function()
  i = i % #bodies + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = sigs[i],
  }, bodies[i])
end
