// users: finds or spawns the one actor that owns each user's connections and tasks. Because
// every connection write of a user goes through that actor, there is exactly one writer per
// connection, and refreshes of one connection can never race.
//
// User actors are monitored by the registry and live until the node stops. A node with very many
// users would passivate idle ones (drop them after a quiet period and respawn on demand); that
// needs a handshake so no message is in flight to a stopping actor, and is left for when the
// per-user memory shows up in bench/.

#include <spdlog/spdlog.h>

#include <unordered_map>

#include "actors/context.hpp"
#include "actors/messages.hpp"

namespace latchkey {

caf::behavior users_actor(caf::event_based_actor* self, context_ptr ctx) {
  auto actors = std::make_shared<std::unordered_map<std::string, caf::actor>>();

  // A user actor that died (a bug, never a network failure: those are values) is forgotten,
  // so the next message for that user gets a fresh one that reloads its state from disk.
  self->set_down_handler([actors](caf::down_msg& down) {
    for (auto it = actors->begin(); it != actors->end(); ++it) {
      if (it->second.address() == down.source) {
        spdlog::error("user actor stopped unexpectedly user={} reason={}", it->first,
                      to_string(down.reason));
        actors->erase(it);
        return;
      }
    }
  });
  // On shutdown, stop the user actors too.
  self->attach_functor([actors](const caf::error&) {
    for (auto& [user, actor] : *actors)
      caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  });

  return {
      // Tokens minted under a provider's old settings must not reach its new API host.
      [self, actors](provider_changed_atom changed, const std::string& provider) {
        for (auto& [user, actor] : *actors)
          self->send(actor, changed, provider);
      },
      [self, ctx, actors](lookup_atom, const std::string& user) -> caf::actor {
        auto it = actors->find(user);
        if (it == actors->end()) {
          auto actor = self->spawn<caf::monitored>(user_actor, user, ctx);
          it = actors->emplace(user, std::move(actor)).first;
        }
        return it->second;
      },
  };
}

}  // namespace latchkey
