// Start-up checks of a parallel run, before anything is built or any rank waits on another.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "launch/config.h"
#include "parallel/topology.h"

namespace tessera {

class MpiWorld;

// Checks a layout against the model and batch before anything is built: every impossible
// combination is a UserError naming the keys. Pure; the same answer on every rank.
void validate_layout(const RunConfig& cfg, const Topology& topo);

// The first tensor-parallel group whose ranks run on more than one host, described as
// "ranks 0-3 spans nodes node1, node2"; "" when every group sits inside one host.
// rank_hosts[r] is rank r's host name. Pure.
std::string tp_group_spanning_hosts(const std::vector<std::string>& rank_hosts, const Topology& topo);

// Runs `fn` on every rank and agrees on the outcome before anything else happens: when a
// UserError was raised on any rank, every rank throws AgreedError (the lowest failing rank
// reports it). With no world (one process) it just runs `fn`. Only for code without
// collectives, so that a rank that fails early cannot leave the others waiting.
void run_agreed(const MpiWorld* world, const std::function<void()>& fn);
// Every rank calls it together: the reporting rank prints `message`, then all throw
// AgreedError (already reported) once the line is out.
[[noreturn]] void fail_together(const MpiWorld* world, const std::string& message, bool report);

}  // namespace tessera
