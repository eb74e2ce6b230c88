"""Words of the savings report and dashboard, in English and Vietnamese (SPEC.md: the web
UI speaks both)."""

from __future__ import annotations

LANGUAGES = ("vi", "en")

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Filmless savings report",
        "period": "Period",
        "generated": "Generated",
        "group": "Group",
        "month": "Month", "modality": "Modality", "department": "Department",
        "referring": "Referring physician", "total": "Total",
        "studies": "Studies archived", "images": "Images archived",
        "delivered_studies": "Delivered digitally", "printed_studies": "Still printed",
        "printed_sheets": "Sheets printed", "films_avoided": "Films avoided",
        "film_cost_avoided": "Film cost avoided",
        "envelope_cost_avoided": "Envelopes avoided",
        "paper_cost_avoided": "Paper reports avoided", "cd_cost_avoided": "CDs avoided",
        "costs_avoided": "Costs avoided", "printed_cost": "Film still spent",
        "storage_bytes": "Storage (bytes)", "storage_cost": "Storage cost",
        "net_savings": "Net savings",
        "chart_savings": "Net savings per month",
        "chart_films": "Films avoided per modality",
        "chart_storage": "Archive size (GB)",
        "operations": "Operations",
        "studies_per_day": "Studies per day",
        "turnaround": "Turnaround (minutes, median / 90th percentile)",
        "acquired_to_archived": "Acquisition to archive",
        "archived_to_first_view": "Archive to first view",
        "archived_to_final_report": "Archive to final report",
        "storage_used": "Storage used", "growth": "Growth per day",
        "days_until_full": "Days until full", "ingest_errors": "Ingest errors",
        "none": "none", "unknown": "unknown",
        "cost_model_note": "Prices and assumptions: see docs/savings.md.",
        "print": "Print",
    },
    "vi": {
        "title": "Báo cáo tiết kiệm không in phim",
        "period": "Kỳ báo cáo",
        "generated": "Lập lúc",
        "group": "Nhóm",
        "month": "Tháng", "modality": "Thiết bị", "department": "Khoa",
        "referring": "Bác sĩ chỉ định", "total": "Tổng cộng",
        "studies": "Ca chụp lưu trữ", "images": "Ảnh lưu trữ",
        "delivered_studies": "Trả kết quả số", "printed_studies": "Vẫn in phim",
        "printed_sheets": "Số tấm phim đã in", "films_avoided": "Phim không phải in",
        "film_cost_avoided": "Tiết kiệm phim",
        "envelope_cost_avoided": "Tiết kiệm bì phim",
        "paper_cost_avoided": "Tiết kiệm giấy kết quả", "cd_cost_avoided": "Tiết kiệm đĩa CD",
        "costs_avoided": "Chi phí tránh được", "printed_cost": "Chi phí phim đã in",
        "storage_bytes": "Dung lượng (byte)", "storage_cost": "Chi phí lưu trữ",
        "net_savings": "Tiết kiệm ròng",
        "chart_savings": "Tiết kiệm ròng theo tháng",
        "chart_films": "Phim không phải in theo thiết bị",
        "chart_storage": "Dung lượng lưu trữ (GB)",
        "operations": "Vận hành",
        "studies_per_day": "Số ca mỗi ngày",
        "turnaround": "Thời gian xử lý (phút, trung vị / bách phân vị 90)",
        "acquired_to_archived": "Từ lúc chụp đến lưu trữ",
        "archived_to_first_view": "Từ lưu trữ đến lần xem đầu",
        "archived_to_final_report": "Từ lưu trữ đến kết quả chính thức",
        "storage_used": "Dung lượng đã dùng", "growth": "Tăng mỗi ngày",
        "days_until_full": "Số ngày đến khi đầy", "ingest_errors": "Lỗi nhận ảnh",
        "none": "không có", "unknown": "không rõ",
        "cost_model_note": "Đơn giá và giả định: xem docs/savings.md.",
        "print": "In",
    },
}


def pick_language(lang: str | None, accept_language: str | None = None) -> str:
    """``lang`` if given and known, else the first known language of Accept-Language
    (RFC 9110 12.5.4, quality values honoured), else Vietnamese."""
    if lang in STRINGS:
        return lang  # type: ignore[return-value]
    ranked: list[tuple[float, str]] = []
    for item in (accept_language or "").split(","):
        parts = item.strip().split(";")
        tag = parts[0].strip().lower().split("-")[0]
        q = 1.0
        for p in parts[1:]:
            if p.strip().startswith("q="):
                try:
                    q = float(p.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag in STRINGS and q > 0:
            ranked.append((q, tag))
    return max(ranked, key=lambda t: t[0])[1] if ranked else "vi"
