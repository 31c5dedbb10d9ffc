// hwprune: a clamp to two bounds, Clip(min, max) (ReLU6 is Clip(0, 6), hardtanh Clip(-1, 1)).
// Copied verbatim into an hls4ml project by hwprune's hls4ml backend for a Clip that none
// of hls4ml's activations computes (any bounds, and ReLU6 with io_stream).
//
// The bounds are given as integers on the input's grid (CONFIG_T::lo_bits, hi_bits: the
// input type's bit patterns, already inside its range), so the comparisons are exact; the
// result is the clamped input assigned to res_T, one cast, as hls4ml's relu_max does.
#ifndef NNET_CLIP_H_
#define NNET_CLIP_H_

#include "hls_stream.h"
#include "nnet_common.h"
#include "nnet_types.h"

namespace nnet {

template <class data_T> data_T clip_bound(long long bits) {
    data_T bound;
    bound.range() = bits;  // the bit pattern: exact, no rounding
    return bound;
}

template <class data_T, class res_T, typename CONFIG_T> void clip(data_T data[CONFIG_T::n_in], res_T res[CONFIG_T::n_in]) {
    #pragma HLS PIPELINE
    const data_T lo = clip_bound<data_T>(CONFIG_T::lo_bits);
    const data_T hi = clip_bound<data_T>(CONFIG_T::hi_bits);
    for (int ii = 0; ii < CONFIG_T::n_in; ii++) {
        data_T x = data[ii];
        if (x < lo)
            res[ii] = lo;
        else if (x > hi)
            res[ii] = hi;
        else
            res[ii] = x;
    }
}

template <class data_T, class res_T, typename CONFIG_T> void clip(hls::stream<data_T> &data, hls::stream<res_T> &res) {
    typedef typename data_T::value_type value_T;
    const value_T lo = clip_bound<value_T>(CONFIG_T::lo_bits);
    const value_T hi = clip_bound<value_T>(CONFIG_T::hi_bits);
ClipLoop:
    for (int i = 0; i < CONFIG_T::n_in / res_T::size; i++) {
        #pragma HLS PIPELINE
        data_T in_data = data.read();
        res_T out_data;
        PRAGMA_DATA_PACK(out_data)
    ClipPackLoop:
        for (int j = 0; j < res_T::size; j++) {
            #pragma HLS UNROLL
            value_T x = in_data[j];
            if (x < lo)
                out_data[j] = lo;
            else if (x > hi)
                out_data[j] = hi;
            else
                out_data[j] = x;
        }
        res.write(out_data);
    }
}

} // namespace nnet

#endif
