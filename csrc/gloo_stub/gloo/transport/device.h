#pragma once
// fpgan: see rendezvous/store.h (declarations standing in for gloo 3135b0b).
#include "gloo/rendezvous/store.h"
