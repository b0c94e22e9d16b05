// The LSTM-family variant flags; they must match odyssey/cells/fast.py.
// Part of lstm_family.cpp's one translation unit (included there, in order), so the
// compiler sees the same code as when it was one file.
#pragma once

namespace {

// Variant flags; must match odyssey/cells/fast.py.
constexpr int64_t IG = 1;      // input gate
constexpr int64_t FG = 2;      // forget gate (own parameters)
constexpr int64_t CPL = 4;     // coupled: f = 1 - i
constexpr int64_t OG = 8;      // output gate
constexpr int64_t IACT = 16;   // g = tanh (else identity)
constexpr int64_t OACT = 32;   // h = tanh (else identity)
constexpr int64_t PEEP = 64;   // peepholes
constexpr int64_t FGR = 128;   // full gate recurrence

}  // namespace
