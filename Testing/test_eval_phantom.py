"""The paper's re-identification check on the project's own phantoms: a face is found before defacing, none after."""

import dataclasses

import pytest

from CTADefaceLib.fill import apply_mask, fill_value
from CTADefaceLib.synthetic.phantom import PhantomSpec, make_phantom

SEED = 4242  # a "medium" (1 mm) phantom without glasses; 2 mm phantoms render too coarsely for MTCNN


@pytest.mark.slow
def test_phantom_face_is_detected_then_gone_after_defacing_and_orientation_does_not_matter():
    from CTADefaceEvalLib.faces import detect_face
    from CTADefaceEvalLib.render import render_anterior

    spec = dataclasses.replace(PhantomSpec.random(SEED, size="medium"), devices=())
    lps = make_phantom(dataclasses.replace(spec, orientation="LPS"))
    ras = make_phantom(dataclasses.replace(spec, orientation="RAS"))
    p_lps = detect_face(render_anterior(lps.image, size=512)).probability
    p_ras = detect_face(render_anterior(ras.image, size=512)).probability
    defaced = apply_mask(lps.image, lps.face, fill_value(lps.image, "p10"))
    p_defaced = detect_face(render_anterior(defaced, size=512)).probability
    print(f"MTCNN p: LPS {p_lps:.3f}, RAS {p_ras:.3f}, defaced with ground truth {p_defaced:.3f}")
    assert p_lps > 0.9
    assert abs(p_lps - p_ras) < 0.01
    assert p_defaced < 0.5
