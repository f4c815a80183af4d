"""What a dataset card says about each window source: its name, its license, its terms and its citation.

Facts about the source datasets, not settings: `export.license` overrides the license (docs/export.md); a source
of the user's own (`windows`) has no license or citation we could know.
"""

from __future__ import annotations

from dataclasses import dataclass

EGO4D_LICENSE_PAGE = "https://ego4ddataset.com/ego4d-license/"

EVUD_CITATION = """@article{suglia2024alanavlm,
  title={AlanaVLM: A Multimodal Embodied AI Foundation Model for Egocentric Video Understanding},
  author={Suglia, Alessandro and Greco, Claudio and Baker, Katie and Part, Jose L. and Papaioannou, Ioannis and
          Eshghi, Arash and Konstas, Ioannis and Lemon, Oliver},
  journal={arXiv preprint arXiv:2406.13807},
  year={2024}
}"""

EGO4D_CITATION = """@inproceedings{grauman2022ego4d,
  title={Ego4D: Around the World in 3,000 Hours of Egocentric Video},
  author={Grauman, Kristen and Westbury, Andrew and Byrne, Eugene and Chavis, Zachary and Furnari, Antonino and
          Girdhar, Rohit and Hamburger, Jackson and Jiang, Hao and Liu, Miao and Liu, Xingyu and others},
  booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages={18995--19012},
  year={2022}
}"""

EPIC_KITCHENS_CITATION = """@article{damen2022rescaling,
  title={Rescaling Egocentric Vision: Collection, Pipeline and Challenges for EPIC-KITCHENS-100},
  author={Damen, Dima and Doughty, Hazel and Farinella, Giovanni Maria and Furnari, Antonino and Ma, Jian and
          Kazakos, Evangelos and Moltisanti, Davide and Munro, Jonathan and Perrett, Toby and Price, Will and
          Wray, Michael},
  journal={International Journal of Computer Vision (IJCV)},
  volume={130},
  pages={33--55},
  year={2022}
}"""

EGO4D_TERMS = (
    "The clips are cut from Ego4D videos and may only be shared with people who have accepted the Ego4D license "
    f"({EGO4D_LICENSE_PAGE}): publish this dataset in a **gated or private** repository whose users have "
    "accepted it, never publicly. The questions and answers were generated from the clips and inherit their terms.")


@dataclass(frozen=True)
class SourceCard:
    """What the card says about one window source (data.source)."""

    label: str  # the source's name in prose
    text_meaning: str  # what the `text` column holds for this source
    license: str  # a Hub license id
    terms: str  # who may use and share the clips (markdown)
    tags: tuple[str, ...] = ()
    license_name: str | None = None  # license `other` only
    license_link: str | None = None
    citation: str | None = None  # BibTeX of the source dataset


SOURCES: dict[str, SourceCard] = {
    "ego4d_nlq": SourceCard(
        label="Ego4D NLQ", text_meaning="the Ego4D natural language query whose response window the clip is",
        license="other", license_name="ego4d-license", license_link=EGO4D_LICENSE_PAGE, terms=EGO4D_TERMS,
        tags=("ego4d",), citation=EGO4D_CITATION),
    "ego4d_moments": SourceCard(
        label="Ego4D Moments", text_meaning="the Ego4D moment's label",
        license="other", license_name="ego4d-license", license_link=EGO4D_LICENSE_PAGE, terms=EGO4D_TERMS,
        tags=("ego4d",), citation=EGO4D_CITATION),
    "epic_kitchens": SourceCard(
        label="EPIC-KITCHENS-100", text_meaning="the action segment's narration",
        license="cc-by-nc-4.0",
        terms=("The clips are cut from EPIC-KITCHENS-100 videos, licensed under Creative Commons "
               "Attribution-NonCommercial 4.0 (https://creativecommons.org/licenses/by-nc/4.0/): non-commercial use "
               "only, with attribution (cite the paper below). The questions and answers inherit these terms."),
        tags=("epic-kitchens",), citation=EPIC_KITCHENS_CITATION),
    "windows": SourceCard(
        label="a windows file", text_meaning="the text the windows file gives the window",
        license="unknown",
        terms=("The clips are cut from videos of the publisher's own choosing: their license is the videos' license, "
               "which this card does not know. Set `export.license` (and say here who may use the clips) before "
               "publishing.")),
}
