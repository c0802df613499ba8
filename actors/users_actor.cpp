// users: finds or spawns the one actor that owns each user's connections and tasks. Because
// every connection write of a user goes through that actor, there is exactly one writer per
// connection, and refreshes of one connection can never race.
//
// User actors are linked to the registry and live until the node stops. A node with very many
// users would passivate idle ones (drop them after a quiet period and respawn on demand); that
// needs a handshake so no message is in flight to a stopping actor, and is left for when the
// per-user memory shows up in bench/.

#include <unordered_map>

#include "actors/context.hpp"
#include "actors/messages.hpp"

namespace latchkey {

caf::behavior users_actor(caf::event_based_actor* self, context_ptr ctx) {
  auto actors = std::make_shared<std::unordered_map<std::string, caf::actor>>();
  return {
      [self, ctx, actors](lookup_atom, const std::string& user) -> caf::actor {
        auto it = actors->find(user);
        if (it == actors->end())
          it = actors->emplace(user, self->spawn<caf::linked>(user_actor, user, ctx)).first;
        return it->second;
      },
  };
}

}  // namespace latchkey
